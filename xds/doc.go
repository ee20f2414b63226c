// Package xds is the embedded xDS control plane: it translates the cluster's Services, endpoints and
// Sluice policies into Envoy and proxyless-gRPC configuration and serves it. It arrives with the xDS
// issue.
package xds
