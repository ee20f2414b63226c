// Package ir is the mesh as every proxy should see it, independent of Envoy's types: services,
// their ports, subsets of endpoints, and ordered routes with weighted destinations. It is built by
// xds/translate from the cluster's objects and turned into xDS resources by xds/envoy. Every slice is
// sorted (or ordered by meaning, like routes), so the same cluster gives the same IR.
package ir

import (
	"fmt"
	"time"
)

// IR is the whole mesh config.
type IR struct {
	// Services sorted by namespace, then name.
	Services []Service `json:"services,omitempty"`
	// Identities are the workload certificates of the identities in use, sorted by SPIFFE ID.
	Identities []Identity `json:"identities,omitempty"`
	// TrustBundles are the CA certificates each trust domain in use trusts, sorted by trust domain.
	TrustBundles []TrustBundle `json:"trustBundles,omitempty"`
}

// Identity is the certificate and key of one workload identity (a service account), as its
// identity Secret holds them.
type Identity struct {
	// SPIFFEID is spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
	SPIFFEID string `json:"spiffeID"`
	// CertificateChain is the PEM certificate chain (tls.crt).
	CertificateChain string `json:"certificateChain"`
	// PrivateKey is the PEM private key (tls.key); it never prints.
	PrivateKey SecretText `json:"privateKey"`
	// Source is the identity Secret.
	Source ObjectRef `json:"source"`
}

// TrustBundle is what peers of one trust domain are verified against.
type TrustBundle struct {
	TrustDomain string `json:"trustDomain"`
	// CACertificates are PEM certificates, sorted by fingerprint: the distinct ca.crt certificates
	// of the trust domain's identities in use (during a CA rotation both the old and the new root)
	// and the roots the leader still retains in the trust bundle ConfigMaps of the namespaces that
	// use it (zerotrust.TrustDomainBundles).
	CACertificates string `json:"caCertificates"`
}

// SecretText is private key material. It prints and encodes to JSON as "[redacted]", so that an
// IR in a log or an error never shows it; it decodes from JSON (test inputs) as it is.
type SecretText string

// Redacted is what SecretText prints as.
const Redacted = "[redacted]"

// String prints the redaction, never the text.
func (SecretText) String() string { return Redacted }

// GoString prints the redaction for %#v too.
func (SecretText) GoString() string { return Redacted }

// MarshalJSON encodes the redaction, never the text.
func (SecretText) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// Service is a Kubernetes Service as the mesh serves it.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// ClusterIP is the Service's virtual IP; empty for headless Services.
	ClusterIP string `json:"clusterIP,omitempty"`
	// Ports sorted by number.
	Ports []ServicePort `json:"ports,omitempty"`
}

// Hostname is the Service's cluster-local DNS name, e.g. checkout.shop.svc.cluster.local.
func (s *Service) Hostname() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", s.Name, s.Namespace)
}

// Protocol is what a port speaks, from its appProtocol or name.
type Protocol string

// The protocols the mesh routes at L7 (HTTP, GRPC) or passes through (TCP).
const (
	ProtocolHTTP Protocol = "HTTP"
	ProtocolGRPC Protocol = "GRPC"
	ProtocolTCP  Protocol = "TCP"
)

// ServicePort is one port of a Service: its subsets and its routes.
type ServicePort struct {
	Name     string   `json:"name,omitempty"`
	Port     uint32   `json:"port"`
	Protocol Protocol `json:"protocol"`
	// Subsets sorted by name. The subset named "" (AllEndpoints) is always present and holds every
	// endpoint of the port.
	Subsets []Subset `json:"subsets"`
	// Routes in match order; the last one matches every request (the default route).
	Routes []Route `json:"routes"`
	// Policy holds the port's connection-level settings (circuit breaking, outlier detection,
	// load balancing); nil means the defaults.
	Policy *ClusterPolicy `json:"policy,omitempty"`
	// RateLimit caps the requests each ready endpoint of the port accepts (enforced by the
	// endpoint's own sidecar); nil means no limit.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// Identities are the SPIFFE IDs of the service accounts of the port's endpoints whose mTLS mode
	// is STRICT or PERMISSIVE, sorted; callers verify that the server presents one of them.
	Identities []string `json:"identities,omitempty"`
	// Sources names the objects whose settings shaped this port (e.g. "TrafficPolicy shop/checkout"),
	// so a rejected resource can be traced back to them.
	Sources []ObjectRef `json:"sources,omitempty"`
}

// AllEndpoints is the name of the subset that holds every endpoint of a port.
const AllEndpoints = ""

// Subset is a named group of a port's endpoints.
type Subset struct {
	Name string `json:"name"`
	// Endpoints sorted by address, then port.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one pod address that serves a port.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	// Ready is false for endpoints that are terminating or not ready; proxies send them no traffic.
	Ready bool `json:"ready"`
	// Workload and Version label the endpoint for telemetry (the pod's app and version labels).
	Workload string `json:"workload,omitempty"`
	Version  string `json:"version,omitempty"`
	// MTLS is the mutual TLS mode of the endpoint's pod, from the ZeroTrust that covers it; empty
	// means none covers it, which is the same as MTLSDisable.
	MTLS MTLSMode `json:"mtls,omitempty"`
	// Identity is the SPIFFE ID of the endpoint's pod (spiffe://<trustDomain>/ns/<ns>/sa/<sa>) when
	// its mode is STRICT or PERMISSIVE; its trust domain names the trust bundle an Envoy sidecar
	// verifies callers with.
	Identity string `json:"identity,omitempty"`
	// Authorization is who may call the endpoint, and what, when the ZeroTrust covering its pod has
	// rules for it; set only for STRICT and PERMISSIVE endpoints (proxyless gRPC servers enforce it
	// under STRICT only, Envoy sidecars under both). nil means every authenticated caller may call
	// everything.
	Authorization *Authorization `json:"authorization,omitempty"`
}

// Authorization is default deny: a call is allowed only when a policy allows it. With no policies
// (the workload has rules, but none for this port) every call is denied.
type Authorization struct {
	// Policies sorted by name.
	Policies []AuthorizationPolicy `json:"policies,omitempty"`
	// Source is the ZeroTrust the rules come from.
	Source ObjectRef `json:"source"`
}

// AuthorizationPolicy allows a call whose caller matches one of Principals, whose path matches one
// of Paths (any path when empty) and whose method is one of Methods (any when empty).
type AuthorizationPolicy struct {
	// Name is the rule's name, unique within its ZeroTrust.
	Name       string        `json:"name"`
	Principals []StringMatch `json:"principals"`
	Paths      []StringMatch `json:"paths,omitempty"`
	Methods    []string      `json:"methods,omitempty"`
}

// StringMatch matches a whole string (Exact), its beginning (Prefix) or its end (Suffix); exactly
// one is set. For principals it is matched against the URI SANs (SPIFFE IDs) of the caller's
// certificate.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Suffix string `json:"suffix,omitempty"`
}

// MTLSMode is how an endpoint takes inbound connections.
type MTLSMode string

// The mutual TLS modes (ZeroTrust's spec.mtls.mode).
const (
	MTLSStrict     MTLSMode = "STRICT"
	MTLSPermissive MTLSMode = "PERMISSIVE"
	MTLSDisable    MTLSMode = "DISABLE"
)

// Route sends the requests that fit Match to weighted destinations.
type Route struct {
	// Name is unique within the port, e.g. "beta" or "default".
	Name  string `json:"name"`
	Match Match  `json:"match"`
	// Destinations with weights that add up to 100.
	Destinations []Destination `json:"destinations"`
	// Mirror copies a share of the route's requests; nil means no mirroring.
	Mirror *Mirror `json:"mirror,omitempty"`
	// Timeout bounds the whole request; zero means no timeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Retry retries failed requests; nil means no retries.
	Retry *Retry `json:"retry,omitempty"`
	// Fault delays or aborts a share of the route's requests; nil means no fault injection.
	Fault *Fault `json:"fault,omitempty"`
}

// DefaultRouteName names the route that matches every request.
const DefaultRouteName = "default"

// Match is a set of conditions that must all hold. The zero Match takes every request.
type Match struct {
	PathExact  string `json:"pathExact,omitempty"`
	PathPrefix string `json:"pathPrefix,omitempty"`
	// PathRegex is an RE2 expression the whole path must match; at most one path condition is set.
	PathRegex string        `json:"pathRegex,omitempty"`
	Headers   []HeaderMatch `json:"headers,omitempty"`
	// Methods allowed; empty means any.
	Methods []string `json:"methods,omitempty"`
	// QueryParams must all match the query string.
	QueryParams []HeaderMatch `json:"queryParams,omitempty"`
}

// HeaderMatch matches one header (or query parameter): by Exact, Prefix or Regex, at most one of
// them set; with none set the header must be present.
type HeaderMatch struct {
	Name   string `json:"name"`
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// Destination is a weighted share of a route's requests for one subset of the same port.
type Destination struct {
	Subset string `json:"subset"`
	Weight uint32 `json:"weight"`
}

// Mirror copies Percent of the requests to a subset of a (possibly other) service's port.
type Mirror struct {
	Namespace string  `json:"namespace"`
	Service   string  `json:"service"`
	Port      uint32  `json:"port"`
	Subset    string  `json:"subset"`
	Percent   float64 `json:"percent"`
}

// Retry retries failed requests.
type Retry struct {
	Attempts      uint32        `json:"attempts"`
	PerTryTimeout time.Duration `json:"perTryTimeout,omitempty"`
	// RetryOn uses Envoy's names (5xx, reset, connect-failure, unavailable, ...).
	RetryOn []string `json:"retryOn,omitempty"`
	// NonIdempotent allows retrying POST and PATCH requests on HTTP ports; by default only the
	// other methods are retried there.
	NonIdempotent bool `json:"nonIdempotent,omitempty"`
}

// Fault delays and/or aborts a share of requests.
type Fault struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay holds Percent of the requests for Duration.
type FaultDelay struct {
	Percent  float64       `json:"percent"`
	Duration time.Duration `json:"duration"`
}

// FaultAbort answers Percent of the requests with HTTPStatus, or with GRPCStatus (a gRPC status
// code, 1 to 16) when that is not zero.
type FaultAbort struct {
	Percent    float64 `json:"percent"`
	HTTPStatus uint32  `json:"httpStatus,omitempty"`
	GRPCStatus uint32  `json:"grpcStatus,omitempty"`
}

// RateLimit is a token bucket: RequestsPerSecond tokens a second, holding at most
// RequestsPerSecond+Burst.
type RateLimit struct {
	RequestsPerSecond uint32 `json:"requestsPerSecond"`
	Burst             uint32 `json:"burst,omitempty"`
}

// ClusterPolicy is the connection-level behaviour towards a port's endpoints.
type ClusterPolicy struct {
	// LoadBalancer is RoundRobin (the default), LeastRequest, Random, RingHash or Maglev.
	LoadBalancer string `json:"loadBalancer,omitempty"`
	// HashHeader or HashCookie is what RingHash and Maglev hash (set on every route of the port);
	// neither means a random hash.
	HashHeader string      `json:"hashHeader,omitempty"`
	HashCookie *HashCookie `json:"hashCookie,omitempty"`
	// CircuitBreaker caps what is in flight towards the port; nil means the proxies' defaults.
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	// RetryBudget caps the retries in flight as a share of the requests in flight.
	RetryBudget *RetryBudget `json:"retryBudget,omitempty"`
	// OutlierDetection ejects failing endpoints; nil means none.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
}

// HashCookie is the cookie a consistent hash keys on; with a TTL the proxy sets it when absent.
type HashCookie struct {
	Name string        `json:"name"`
	TTL  time.Duration `json:"ttl,omitempty"`
}

// CircuitBreaker thresholds; zero means the proxies' default.
type CircuitBreaker struct {
	MaxConnections     uint32 `json:"maxConnections,omitempty"`
	MaxPendingRequests uint32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        uint32 `json:"maxRequests,omitempty"`
	// MaxRetries is a pointer because zero retries in flight is a meaningful cap.
	MaxRetries *uint32 `json:"maxRetries,omitempty"`
}

// RetryBudget allows Percent of the active requests as retries, and at least MinConcurrency.
type RetryBudget struct {
	Percent        float64 `json:"percent"`
	MinConcurrency uint32  `json:"minConcurrency"`
}

// OutlierDetection ejects endpoints after Consecutive5xx failures in a row (zero: not by that
// rule) and/or by FailurePercentage.
type OutlierDetection struct {
	Consecutive5xx     uint32             `json:"consecutive5xx,omitempty"`
	FailurePercentage  *FailurePercentage `json:"failurePercentage,omitempty"`
	Interval           time.Duration      `json:"interval"`
	BaseEjectionTime   time.Duration      `json:"baseEjectionTime"`
	MaxEjectionPercent uint32             `json:"maxEjectionPercent"`
}

// FailurePercentage ejects endpoints whose failure share in an interval reaches Threshold.
type FailurePercentage struct {
	Threshold     uint32 `json:"threshold"`
	MinimumHosts  uint32 `json:"minimumHosts"`
	RequestVolume uint32 `json:"requestVolume"`
}

// ObjectRef names a Kubernetes object that contributed to the IR.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (r ObjectRef) String() string { return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name) }
