package envoy

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

const (
	hcmFilterName    = "envoy.filters.network.http_connection_manager"
	routerFilterName = "envoy.filters.http.router"
)

func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(hcm)}}
}

// routerFilter is the terminal HTTP filter; grpc-go knows it on both client and server side.
func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: routerFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})}}
}

// listenerHCM is an HTTP connection manager found in a listener, with where it was found.
type listenerHCM struct {
	where string // e.g. `filter chain "x" filter "y"` or "api_listener"
	hcm   *hcmv3.HttpConnectionManager
}

// listenerHCMs unpacks every HTTP connection manager of a listener: in its api_listener (a gRPC
// client's listener), its filter chains and its default filter chain. go-control-plane's
// Snapshot.Consistent does not look inside api_listener; this does.
func listenerHCMs(l *listenerv3.Listener) ([]listenerHCM, error) {
	var out []listenerHCM
	if api := l.GetApiListener().GetApiListener(); api != nil {
		hcm := &hcmv3.HttpConnectionManager{}
		if err := api.UnmarshalTo(hcm); err != nil {
			return nil, fmt.Errorf("api_listener: %w", err)
		}
		out = append(out, listenerHCM{where: "api_listener", hcm: hcm})
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains[:len(chains):len(chains)], d)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || !tc.MessageIs(&hcmv3.HttpConnectionManager{}) {
				continue
			}
			hcm := &hcmv3.HttpConnectionManager{}
			where := fmt.Sprintf("filter chain %q filter %q", fc.GetName(), f.GetName())
			if err := tc.UnmarshalTo(hcm); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			out = append(out, listenerHCM{where: where, hcm: hcm})
		}
	}
	return out, nil
}

const (
	faultFilterName     = "envoy.filters.http.fault"
	rateLimitFilterName = "envoy.filters.http.local_ratelimit"
)

// faultFilter injects no fault by itself; routes switch it on with a per-route HTTPFault. Both
// Envoy and grpc-go implement it.
func faultFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: faultFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&faultv3.HTTPFault{})}}
}

// portHasFaults says whether a route of the port injects faults, so its connection managers need
// the fault filter.
func portHasFaults(port *ir.ServicePort) bool {
	for i := range port.Routes {
		if port.Routes[i].Fault != nil {
			return true
		}
	}
	return false
}

// httpFilters are the HTTP filters of a port's outbound connection manager (either flavour).
func httpFilters(port *ir.ServicePort) []*hcmv3.HttpFilter {
	if portHasFaults(port) {
		return []*hcmv3.HttpFilter{faultFilter(), routerFilter()}
	}
	return []*hcmv3.HttpFilter{routerFilter()}
}

// faultConfig is a route's fault injection. An abort with a gRPC status answers HTTP 200 with
// that grpc-status; grpc-go maps an HTTP status to a gRPC status the same way Envoy does.
func faultConfig(f *ir.Fault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: duration(d.Duration)},
			Percentage:         fractionalPercent(d.Percent),
		}
	}
	if a := f.Abort; a != nil {
		out.Abort = &faultv3.FaultAbort{Percentage: fractionalPercent(a.Percent)}
		if a.GRPCStatus != 0 {
			out.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: a.GRPCStatus}
		} else {
			out.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: a.HTTPStatus}
		}
	}
	return out
}

// rateLimitFilter is a token bucket for every request through the connection manager: rps tokens
// a second, rps+burst at most. Limited requests get 429 (gRPC: RESOURCE_EXHAUSTED) and every
// response the x-ratelimit-limit/-remaining/-reset headers.
func rateLimitFilter(statPrefix string, rl *ir.RateLimit) *hcmv3.HttpFilter {
	always := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	cfg := &localratelimitv3.LocalRateLimit{
		StatPrefix: statPrefix,
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     rl.RequestsPerSecond + rl.Burst,
			TokensPerFill: wrapperspb.UInt32(rl.RequestsPerSecond),
			FillInterval:  duration(time.Second),
		},
		FilterEnabled:                  always,
		FilterEnforced:                 always,
		EnableXRatelimitHeaders:        ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		RateLimitedAsResourceExhausted: true,
	}
	return &hcmv3.HttpFilter{Name: rateLimitFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}
