package server

import (
	"errors"
	"strings"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// metrics are the server's Prometheus metrics; docs/xds-server.md lists them.
type metrics struct {
	connectedProxies  *prometheus.GaugeVec     // flavour
	pushes            *prometheus.CounterVec   // type
	snapshotResources *prometheus.GaugeVec     // type
	snapshotBytes     prometheus.Gauge         //
	translation       prometheus.Histogram     //
	nacks             *prometheus.CounterVec   // type
	convergence       *prometheus.HistogramVec // type
	rejections        prometheus.Counter       //
	warmTimeouts      prometheus.Counter       //
	refusedStreams    *prometheus.CounterVec   // reason
	tlsHandshakes     *prometheus.CounterVec   // result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &metrics{
		connectedProxies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_xds_connected_proxies",
			Help: "xDS streams open on this replica whose node is known, by proxy flavour.",
		}, []string{"flavour"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_xds_pushes_total",
			Help: "xDS responses sent to proxies, by resource type (lds, rds, cds, eds, sds).",
		}, []string{"type"}),
		snapshotResources: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_xds_snapshot_resources",
			Help: "Resources in the published snapshot, by resource type (listeners of every flavour; clusters by name).",
		}, []string{"type"}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_xds_snapshot_bytes",
			Help: "Serialized size of every resource in the published snapshot.",
		}),
		translation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_xds_translation_seconds",
			Help:    "Time to translate the cluster's objects into an xDS snapshot.",
			Buckets: latency,
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_xds_nacks_total",
			Help: "xDS responses rejected by proxies, by resource type.",
		}, []string{"type"}),
		convergence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_xds_convergence_seconds",
			Help:    "Time from the change that triggered a publish to a proxy's ACK of the version carrying it, by resource type.",
			Buckets: latency,
		}, []string{"type"}),
		rejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_xds_snapshot_rejections_total",
			Help: "Snapshots that failed validation and were not published.",
		}),
		warmTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_xds_warm_timeouts_total",
			Help: "Publishes that stopped waiting for proxies to ACK new clusters before pushing routes.",
		}),
		refusedStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_xds_refused_streams_total",
			Help: "xDS streams ended with PermissionDenied, by reason (certificate, node, secret).",
		}, []string{"reason"}),
		tlsHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_xds_tls_handshakes_total",
			Help: "TLS handshakes on the mutual TLS xDS port, by result (ok, failed: e.g. no or an untrusted client certificate).",
		}, []string{"result"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.connectedProxies, m.pushes, m.snapshotResources, m.snapshotBytes,
		m.translation, m.nacks, m.convergence, m.rejections, m.warmTimeouts, m.refusedStreams, m.tlsHandshakes} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, f := range envoy.Flavours {
		m.connectedProxies.WithLabelValues(string(f))
	}
	for _, t := range servedTypes {
		m.snapshotResources.WithLabelValues(typeNames[t])
	}
	for _, r := range []string{refusedCertificate, refusedNode, refusedSecret} {
		m.refusedStreams.WithLabelValues(r)
	}
	return m, nil
}

// ObserveTranslation records how long the caller took to build a snapshot.
func (s *Server) ObserveTranslation(d time.Duration) {
	s.metrics.translation.Observe(d.Seconds())
}

// updateSnapshotMetrics sets the snapshot gauges from the published resources. Called under pubMu.
func (s *Server) updateSnapshotMetrics() {
	counts := map[string]int{}
	for key, resources := range s.published {
		// Every flavour's cluster cache holds the same names (some overridden): count them once.
		if typeOfKey(key) == resource.ClusterType && key != clusterKey(envoy.Flavours[0]) {
			continue
		}
		counts[typeNames[typeOfKey(key)]] += len(resources)
	}
	// Each identity's default copy (addDefaultAliases) is the same secret again: not counted.
	for name := range s.published[resource.SecretType] {
		if strings.HasPrefix(name, defaultAliasPrefix) {
			counts[typeNames[resource.SecretType]]--
		}
	}
	for _, t := range servedTypes {
		s.metrics.snapshotResources.WithLabelValues(typeNames[t]).Set(float64(counts[typeNames[t]]))
	}
	s.metrics.snapshotBytes.Set(float64(s.publishedBytes))
}
