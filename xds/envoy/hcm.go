package envoy

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
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
