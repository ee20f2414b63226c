// Package envoy translates the mesh IR (xds/ir) into xDS resources: listeners per proxy flavour
// (Envoy sidecar or proxyless gRPC), and routes, clusters and endpoints shared by both. Translate
// is pure and deterministic; Snapshot.Validate checks a result before it is published; Bootstrap
// builds an Envoy sidecar's startup config. docs/xds.md describes the names, the node contract and
// the telemetry.
package envoy
