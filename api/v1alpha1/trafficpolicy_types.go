package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrafficPolicySpec shapes the traffic sent to one Service: where requests go and how calls behave
// when the service is slow or failing.
// +kubebuilder:validation:XValidation:rule="!has(self.routes) || self.routes.all(r, r.destinations.all(d, !has(d.subset) || (has(self.subsets) && self.subsets.exists(s, s.name == d.subset))))",message="every destination's subset must be one of the names in spec.subsets",fieldPath=".routes"
// +kubebuilder:validation:XValidation:rule="!has(self.retries) || !has(self.retries.perTryTimeout) || !has(self.timeout) || duration(self.retries.perTryTimeout) <= duration(self.timeout)",message="retries.perTryTimeout must not be longer than timeout",fieldPath=".retries.perTryTimeout"
type TrafficPolicySpec struct {
	// targetRef names the Service, in the same namespace, whose callers this policy configures.
	// +required
	TargetRef ServiceRef `json:"targetRef"`

	// subsets split the Service's pods into named groups by label, such as a version, so routes can
	// send traffic to one group.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Subsets []Subset `json:"subsets,omitempty"`

	// routes are tried in order; the first whose match fits a request decides its destinations.
	// Requests that no route matches go to the whole Service.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Routes []Route `json:"routes,omitempty"`

	// timeout bounds a whole request, retries included, such as 5s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// retries retry failed requests.
	// +optional
	Retries *RetryPolicy `json:"retries,omitempty"`

	// faultInjection delays or fails a share of requests on purpose, to test how callers cope.
	// +optional
	FaultInjection *FaultInjection `json:"faultInjection,omitempty"`

	// mirror copies a share of requests to another Service; the copies' responses are discarded.
	// +optional
	Mirror *Mirror `json:"mirror,omitempty"`

	// rateLimit caps the requests each of the Service's pods accepts, with a token bucket.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// circuitBreaker caps the connections and requests callers keep open to the Service, so a slow
	// service sheds load instead of queueing it.
	// +optional
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`

	// outlierDetection ejects pods that keep failing from load balancing for a while.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`

	// loadBalancer picks how callers spread requests over the Service's pods.
	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
}

// ServiceRef names a Service in the same namespace.
type ServiceRef struct {
	// kind of the target. Only Service is supported.
	// +optional
	// +kubebuilder:default=Service
	// +kubebuilder:validation:Enum=Service
	Kind string `json:"kind,omitempty"`

	// name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// Subset is a named group of a Service's pods, picked by labels.
type Subset struct {
	// name of the subset, used by route destinations.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// labels a pod must carry, on top of the Service's selector, to belong to the subset.
	// +required
	// +kubebuilder:validation:MinProperties=1
	Labels map[string]string `json:"labels"`
}

// Route sends requests that fit its match to weighted destinations.
// +kubebuilder:validation:XValidation:rule="self.destinations.map(d, d.weight).sum() == 100",message="destination weights must add up to 100",fieldPath=".destinations"
type Route struct {
	// name identifies the route in status, metrics and logs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// match picks the requests this route handles; every condition set must hold. An absent match
	// takes every request.
	// +optional
	Match *RouteMatch `json:"match,omitempty"`

	// destinations share the route's requests by weight.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	Destinations []Destination `json:"destinations"`
}

// HTTPMethod is an HTTP request method.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;PATCH;DELETE;OPTIONS;CONNECT;TRACE
type HTTPMethod string

// RouteMatch lists conditions on a request; all must hold.
// +kubebuilder:validation:XValidation:rule="[has(self.path), has(self.pathPrefix), has(self.pathRegex)].filter(x, x).size() <= 1",message="set at most one of path, pathPrefix or pathRegex"
type RouteMatch struct {
	// path matches the request path exactly, such as /healthz.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path *string `json:"path,omitempty"`

	// pathPrefix matches paths that start with it, such as /api/.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="must start with /, such as /api/"
	PathPrefix *string `json:"pathPrefix,omitempty"`

	// pathRegex matches when the whole path matches this RE2 regular expression, such as
	// ^/api/v[0-9]+/orders$.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	PathRegex *string `json:"pathRegex,omitempty"`

	// headers must all match.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Headers []HeaderMatch `json:"headers,omitempty"`

	// methods the request may use; empty means any.
	// +optional
	// +kubebuilder:validation:MaxItems=9
	// +listType=set
	Methods []HTTPMethod `json:"methods,omitempty"`

	// queryParams must all match the request's query string. Proxyless gRPC clients skip routes
	// with query parameter matches (gRPC calls have no query string).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	QueryParams []QueryParamMatch `json:"queryParams,omitempty"`
}

// QueryParamMatch matches one query parameter by exact value, prefix or regular expression, or
// by being present.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.regex), has(self.present)].filter(x, x).size() == 1",message="set exactly one of exact, prefix, regex or present"
// +kubebuilder:validation:XValidation:rule="!has(self.present) || self.present",message="present must be true; leave the parameter out of the match to accept any request"
type QueryParamMatch struct {
	// name of the query parameter, case-sensitive, such as version.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`

	// exact matches when the parameter's value equals this string.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Exact *string `json:"exact,omitempty"`

	// prefix matches when the parameter's value starts with this string.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Prefix *string `json:"prefix,omitempty"`

	// regex matches when the whole value matches this RE2 regular expression.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`

	// present matches when the parameter is in the query string, whatever its value.
	// +optional
	Present *bool `json:"present,omitempty"`
}

// Destination is a share of a route's requests sent to a subset, or to the whole Service.
type Destination struct {
	// subset receives the requests; absent means all the Service's pods.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Subset string `json:"subset,omitempty"`

	// weight is this destination's percentage of the route's requests; a route's weights add up
	// to 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight *int32 `json:"weight,omitempty"`
}

// RetryOn is a failure that a request is retried on.
// +kubebuilder:validation:Enum="5xx";gateway-error;reset;connect-failure;retriable-4xx;refused-stream;cancelled;deadline-exceeded;internal;resource-exhausted;unavailable
type RetryOn string

// RetryPolicy retries failed requests a bounded number of times.
type RetryPolicy struct {
	// attempts is the most retries per request (not counting the first try).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts int32 `json:"attempts"`

	// perTryTimeout bounds each try, such as 1s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`

	// retryOn lists the failures that are retried: 5xx, gateway-error, reset, connect-failure,
	// retriable-4xx, refused-stream, and for gRPC cancelled, deadline-exceeded, internal,
	// resource-exhausted and unavailable. Default: 5xx, reset, connect-failure.
	// +optional
	// +kubebuilder:validation:MaxItems=11
	// +listType=set
	RetryOn []RetryOn `json:"retryOn,omitempty"`

	// retryNonIdempotent also retries POST and PATCH requests on HTTP ports. By default they are
	// never retried, since a retry could apply them twice. gRPC ports retry every call on the
	// gRPC statuses in retryOn (a gRPC method's idempotency is not visible to the mesh).
	// +optional
	RetryNonIdempotent bool `json:"retryNonIdempotent,omitempty"`

	// budgetPercent caps the retries in flight towards the Service at this share of the requests
	// in flight, so retries cannot multiply an outage; at least minRetryConcurrency retries are
	// always allowed. Default 20. Envoy only: gRPC clients do not implement retry budgets.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	BudgetPercent *int32 `json:"budgetPercent,omitempty"`

	// minRetryConcurrency is the number of concurrent retries always allowed whatever the budget.
	// Default 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MinRetryConcurrency *int32 `json:"minRetryConcurrency,omitempty"`
}

// FaultInjection delays or aborts a share of requests.
// +kubebuilder:validation:XValidation:rule="has(self.delay) || has(self.abort)",message="set delay, abort or both"
type FaultInjection struct {
	// delay holds a share of requests before forwarding them.
	// +optional
	Delay *FaultDelay `json:"delay,omitempty"`

	// abort answers a share of requests with an error instead of forwarding them.
	// +optional
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays a percentage of requests by a fixed time.
type FaultDelay struct {
	// percent of requests delayed, 0 to 100.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`

	// fixedDelay is how long each delayed request waits, such as 200ms.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	FixedDelay metav1.Duration `json:"fixedDelay"`
}

// GRPCStatus is a gRPC status code name.
// +kubebuilder:validation:Enum=CANCELLED;UNKNOWN;INVALID_ARGUMENT;DEADLINE_EXCEEDED;NOT_FOUND;ALREADY_EXISTS;PERMISSION_DENIED;RESOURCE_EXHAUSTED;FAILED_PRECONDITION;ABORTED;OUT_OF_RANGE;UNIMPLEMENTED;INTERNAL;UNAVAILABLE;DATA_LOSS;UNAUTHENTICATED
type GRPCStatus string

// FaultAbort answers a percentage of requests with an HTTP status or a gRPC status.
// +kubebuilder:validation:XValidation:rule="has(self.httpStatus) != has(self.grpcStatus)",message="set exactly one of httpStatus (such as 503) or grpcStatus (such as UNAVAILABLE)"
type FaultAbort struct {
	// percent of requests aborted, 0 to 100.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`

	// httpStatus returned to aborted requests, 200 to 599, such as 503. gRPC callers see the
	// gRPC status that HTTP status maps to (503 is UNAVAILABLE).
	// +optional
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	HTTPStatus *int32 `json:"httpStatus,omitempty"`

	// grpcStatus returned to aborted gRPC calls, such as UNAVAILABLE (HTTP status 200 with that
	// grpc-status).
	// +optional
	GRPCStatus *GRPCStatus `json:"grpcStatus,omitempty"`
}

// Mirror copies a percentage of requests to another Service.
type Mirror struct {
	// service in the same namespace that receives the copies.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service"`

	// port of the mirror Service; absent means the same port as the request's.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// percent of requests copied, 0 to 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent *int32 `json:"percent,omitempty"`
}

// RateLimit is a token bucket per pod: requestsPerSecond tokens a second, holding at most burst
// more. Requests beyond it are answered 429.
type RateLimit struct {
	// requestsPerSecond is the sustained rate each pod accepts.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	RequestsPerSecond int32 `json:"requestsPerSecond"`

	// burst is how many requests above the sustained rate may arrive at once.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Burst int32 `json:"burst,omitempty"`
}

// CircuitBreaker caps what callers keep in flight towards the Service; calls above a cap fail fast.
// +kubebuilder:validation:MinProperties=1
type CircuitBreaker struct {
	// maxConnections is the most TCP connections to the Service from one caller.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// maxPendingRequests is the most requests waiting for a connection.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`

	// maxRequests is the most requests in flight at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int32 `json:"maxRequests,omitempty"`

	// maxRetries is the most retries in flight at once.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects failing pods from load balancing.
// +kubebuilder:validation:XValidation:rule="has(self.consecutive5xxErrors) || has(self.failurePercentage)",message="set consecutive5xxErrors, failurePercentage or both"
type OutlierDetection struct {
	// consecutive5xxErrors in a row from one pod eject it (for gRPC, calls failing with
	// UNAVAILABLE, INTERNAL or UNKNOWN count as 5xx). Envoy only: gRPC clients implement
	// failurePercentage, not this.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Consecutive5xxErrors *int32 `json:"consecutive5xxErrors,omitempty"`

	// failurePercentage ejects a pod whose share of failed requests in an interval reaches a
	// threshold. Both Envoy and proxyless gRPC clients implement it.
	// +optional
	FailurePercentage *FailurePercentageEjection `json:"failurePercentage,omitempty"`

	// interval between ejection sweeps, such as 10s.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// baseEjectionTime is how long a pod stays ejected the first time; it grows with each ejection.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	BaseEjectionTime *metav1.Duration `json:"baseEjectionTime,omitempty"`

	// maxEjectionPercent is the most of the Service's pods ejected at once, 0 to 100.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxEjectionPercent int32 `json:"maxEjectionPercent,omitempty"`
}

// FailurePercentageEjection ejects pods by their share of failed requests.
type FailurePercentageEjection struct {
	// threshold is the failure percentage, 1 to 100, at or above which a pod is ejected.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Threshold int32 `json:"threshold"`

	// minimumHosts is how many pods the Service must have for this ejection to run. Default 5.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	MinimumHosts *int32 `json:"minimumHosts,omitempty"`

	// requestVolume is how many requests a pod must get in an interval to be judged. Default 50.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	RequestVolume *int32 `json:"requestVolume,omitempty"`
}

// LoadBalancerPolicy is a load-balancing algorithm.
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;Random;RingHash;Maglev
type LoadBalancerPolicy string

// LoadBalancer chooses how requests spread over pods.
// +kubebuilder:validation:XValidation:rule="!has(self.hashHeader) || self.policy in ['RingHash', 'Maglev']",message="hashHeader needs policy RingHash or Maglev",fieldPath=".hashHeader"
// +kubebuilder:validation:XValidation:rule="!has(self.hashCookie) || self.policy in ['RingHash', 'Maglev']",message="hashCookie needs policy RingHash or Maglev",fieldPath=".hashCookie"
// +kubebuilder:validation:XValidation:rule="!(has(self.hashHeader) && has(self.hashCookie))",message="set hashHeader or hashCookie, not both"
type LoadBalancer struct {
	// policy is RoundRobin, LeastRequest, Random, or one of the consistent hashes RingHash and
	// Maglev (which keep requests with the same hashHeader or hashCookie on the same pod).
	// +required
	Policy LoadBalancerPolicy `json:"policy"`

	// hashHeader is the request header hashed by RingHash or Maglev, such as x-user-id.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	HashHeader string `json:"hashHeader,omitempty"`

	// hashCookie is the cookie hashed by RingHash or Maglev for sticky sessions. Envoy only:
	// proxyless gRPC clients do not hash cookies and spread such calls at random.
	// +optional
	HashCookie *HashCookie `json:"hashCookie,omitempty"`
}

// HashCookie names the cookie a consistent hash keys on.
type HashCookie struct {
	// name of the cookie, such as session.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name"`

	// ttl, when set, makes the proxy set the cookie on responses to requests that lack it, with
	// this lifetime, such as 1h, so that a client sticks to a pod from its first request.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// TrafficPolicyStatus is what the controller observed and did.
type TrafficPolicyStatus struct {
	Status `json:",inline"`
}

// TrafficPolicy shapes the traffic callers send to a Service: routes by path, header and method
// with weights, plus retries, timeouts, fault injection, mirroring, rate limiting, circuit breaking,
// outlier detection and load balancing.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tp,categories=sluice
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the traffic behaviour the user asks for.
	// +required
	Spec TrafficPolicySpec `json:"spec"`

	// status is what the controller observed and did.
	// +optional
	Status TrafficPolicyStatus `json:"status,omitempty"`
}

// TrafficPolicyList is a list of TrafficPolicies.
//
// +kubebuilder:object:root=true
type TrafficPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficPolicy `json:"items"`
}
