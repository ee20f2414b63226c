// Package xds is the embedded xDS control plane. Data flows one way:
//
//	informer cache → resources.Resources → translate.Translate → ir.IR → envoy.Translate → envoy.Snapshot → server.Runner → proxies
//
// Only the runner in xds/server writes the xDS caches.
package xds
