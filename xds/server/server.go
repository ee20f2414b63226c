// Package server is the embedded xDS server. It holds one xds/cache Cache per resource type (and,
// for listeners, one per proxy flavour), publishes validated envoy.Snapshots into them
// resource by resource, serves them over ADS (state of the world and delta) and reports back what
// the proxies did with them: who is connected, which versions they ACKed, what they NACKed, and how
// long a change took to reach them. See docs/xds-server.md.
package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// Defaults for the zero values of Options.
const (
	DefaultWarmTimeout           = 2 * time.Second
	DefaultKeepaliveTime         = 30 * time.Second
	DefaultKeepaliveTimeout      = 10 * time.Second
	DefaultKeepaliveMinTime      = 10 * time.Second
	DefaultMaxConnectionAge      = 30 * time.Minute
	DefaultMaxConnectionAgeGrace = time.Minute
	DefaultShutdownTimeout       = 10 * time.Second
	DefaultNACKHistory           = 100
)

// Options configure a Server. The zero value is usable: every zero field takes its default.
type Options struct {
	// WarmTimeout bounds how long Publish waits, after pushing new clusters and before pushing the
	// routes and listeners that may use them, for the connected proxies to ACK the new clusters.
	// Default DefaultWarmTimeout; a negative value turns the wait off.
	WarmTimeout time.Duration

	// KeepaliveTime is how long a connection may be idle before the server pings the client;
	// KeepaliveTimeout how long it then waits for the answer before closing the connection.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// KeepaliveMinTime is the shortest interval between client pings the server accepts; a client
	// that pings more often is sent GOAWAY. Pings without an open stream are allowed.
	KeepaliveMinTime time.Duration
	// MaxConnectionAge closes a connection (GOAWAY, then MaxConnectionAgeGrace for its streams to
	// end) after this long, so that proxies reconnect and spread over every replica.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// ShutdownTimeout bounds the graceful stop of Serve once its context ends.
	ShutdownTimeout time.Duration
	// ServerOptions are added to the gRPC server's options (e.g. grpc.Creds for TLS).
	ServerOptions []grpc.ServerOption

	// NACKHistory is how many recent NACKs NACKs() keeps. Default DefaultNACKHistory.
	NACKHistory int
	// OnNACK, if set, is called for every NACK a proxy sends, from the goroutine serving that
	// proxy's stream and outside the server's locks. It must not block.
	OnNACK func(NACK)

	// Registerer receives the server's metrics. Default: controller-runtime's metrics.Registry.
	Registerer prometheus.Registerer
	// Logger defaults to controller-runtime's logger named "xds" when it has no sink (the zero
	// Logger and logr.Discard() alike).
	Logger logr.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.WarmTimeout, DefaultWarmTimeout)
	def(&o.KeepaliveTime, DefaultKeepaliveTime)
	def(&o.KeepaliveTimeout, DefaultKeepaliveTimeout)
	def(&o.KeepaliveMinTime, DefaultKeepaliveMinTime)
	def(&o.MaxConnectionAge, DefaultMaxConnectionAge)
	def(&o.MaxConnectionAgeGrace, DefaultMaxConnectionAgeGrace)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	if o.NACKHistory <= 0 {
		o.NACKHistory = DefaultNACKHistory
	}
	if o.Registerer == nil {
		o.Registerer = ctrlmetrics.Registry
	}
	if o.Logger.GetSink() == nil {
		o.Logger = ctrllog.Log.WithName("xds")
	}
	return o
}

// Server is the xDS server of one replica. Every replica runs one and serves xDS; only the caches'
// content comes from the caller, through Publish.
type Server struct {
	opts    Options
	log     logr.Logger
	metrics *metrics

	// caches by cache key (see classify.go); watcher routes watches to them.
	caches map[string]*xcache.Cache
	// sets interns the streams' subscriptions; sessions are the open streams (session.go).
	sets     *xcache.Sets
	sessions sessions

	// pubMu serialises Publish; it guards published, publishedBytes, versions and validator.
	pubMu          sync.Mutex
	published      map[string]map[string]publishedResource // by cache key, then name
	publishedBytes int
	versions       map[string]uint64 // by cache key
	// validator remembers the resources of the last snapshot Publish validated, so that a publish
	// checks only the new messages alone (and still every reference between resources).
	validator envoy.Validator

	// routeVersions holds the version that last changed each published route configuration.
	routeVersions routeVersions
	// ready is closed by the first Publish that succeeds; streams wait for it (see waitReady).
	ready     chan struct{}
	readyOnce sync.Once
	// history maps recent cache versions to the trigger time of the change they carried.
	history *versionHistory
	// proxies tracks the streams; it is fed by the go-control-plane callbacks.
	proxies *tracker
}

// New builds a Server with empty caches and registers its metrics on opts.Registerer.
func New(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering xDS metrics: %w", err)
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		metrics:   m,
		caches:    map[string]*xcache.Cache{},
		published: map[string]map[string]publishedResource{},
		versions:  map[string]uint64{},
		history:   newVersionHistory(versionHistorySize),
		ready:     make(chan struct{}),
	}
	for _, key := range cacheKeys() {
		typeURL := typeOfKey(key)
		s.caches[key] = xcache.New(typeURL, cache.ResourceRequiresFullStateInSotw(typeURL))
		s.published[key] = map[string]publishedResource{}
	}
	s.proxies = newTracker(s)
	s.sets = xcache.NewSets(s.proxies.intern.get)
	return s, nil
}
