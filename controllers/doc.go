// Package controllers holds the reconcilers for Rollout, TrafficPolicy and ZeroTrust: thin glue that
// gathers objects from the informer cache, calls pure code, applies the result idempotently and
// patches status once. The reconcilers arrive with the issues that implement each kind.
package controllers
