// Package controllers holds the reconcilers: thin glue that gathers objects from the informer
// cache, calls pure code (xds/translate, xds/envoy), hands the result on and patches status once.
// The mesh reconciler runs on every replica and feeds the xDS server; status reconcilers run on the
// leader and read what the pipeline learned from Feedback.
package controllers
