// Package zerotrust holds the pure decisions of the ZeroTrust identity controller: which ZeroTrust
// covers each pod (Resolve), which SPIFFE identities and cert-manager Certificates that asks for
// (Identities, Certificate), and what a ZeroTrust's status says (StatusOf).
//
// Nothing here reads a clock or calls an API: the controller (controllers/zerotrust_controller.go)
// lists the ZeroTrusts, pods, Certificates and issuers, calls these functions and carries out the
// result. The package imports only API types, so the xDS translation can share Resolve.
package zerotrust
