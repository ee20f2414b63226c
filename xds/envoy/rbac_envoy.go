package envoy

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Authorization on Envoy sidecars. HTTP and gRPC ports get the RBAC HTTP filter of proxyless gRPC
// servers (rbacFilter), with prefix and suffix paths narrowed to plain ones (plainPath): Envoy reads authenticated.principal_name from the peer certificate's
// URI SAN (then DNS SAN, then subject), url_path from the request path without its query and
// fragment, and ":method" as a header. On a plain-text connection (PERMISSIVE) the caller has no
// certificate and matches no principal, so it is denied wherever rules apply.

const networkRBACFilterName = "envoy.filters.network.rbac"

// envoyRBACFilter is rbacFilter for an Envoy sidecar's inbound connection manager, whose prefix and
// suffix path matchers allow only plain paths.
func envoyRBACFilter(authz *ir.Authorization) *hcmv3.HttpFilter { return rbacFilterWith(authz, true) }

// plainPath narrows a prefix or suffix path permission to paths without ";" and without "%" (after
// normalisation, only escapes of reserved characters are left). Envoy leaves both alone, but
// applications may not: many strip ";parameters" from segments ("/public/..;/admin" is then a
// way up from an allowed prefix) or decode the path once more ("%252e%252e"). An exact path
// matches only itself, whatever the application makes of it, and is not narrowed; a path that
// needs ";" or an escape can be allowed by an exact rule.
func plainPath(perm *rbacconfigv3.Permission) *rbacconfigv3.Permission {
	contains := func(s string) *rbacconfigv3.Permission {
		return urlPath(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: s}})
	}
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: []*rbacconfigv3.Permission{
		perm,
		{Rule: &rbacconfigv3.Permission_NotRule{NotRule: anyPermission([]*rbacconfigv3.Permission{contains(";"), contains("%")})}},
	}}}}
}

// normalisePaths makes the connection manager rewrite the path before any filter or route sees it,
// so the path the RBAC filter matches is the path the application receives (the rewritten path is
// forwarded) and no spelling of a path matches a rule that its normal form does not:
//   - normalize_path: RFC 3986 normalisation, which removes "." and ".." segments (also when written
//     %2e) and decodes percent-encoded unreserved characters; a path that cannot be normalised
//     gets 400;
//   - merge_slashes: "//" becomes "/";
//   - path_with_escaped_slashes_action REJECT_REQUEST: a path with %2F, %2f, %5C or %5c gets 400
//     (gRPC: INTERNAL). UNESCAPE_AND_REDIRECT would answer a redirect, which gRPC clients do not
//     follow and which changes nothing for a legitimate request, since no client of ours escapes a
//     slash; rejecting also keeps "%2F" from meaning one thing to the rules and another to the
//     application.
//
// Envoy does not change the case of a path; the rules match it case-sensitively, so "/ADMIN"
// matches no rule written for "/admin". The rules match no host, so the host's case is irrelevant.
func normalisePaths(hcm *hcmv3.HttpConnectionManager) {
	hcm.NormalizePath = wrapperspb.Bool(true)
	hcm.MergeSlashes = true
	hcm.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_REJECT_REQUEST
}

// networkRBACFilter enforces authz on a TCP port: only who may connect can be checked there, so a
// policy that names paths or methods (which a TCP connection has not) allows nothing, and the
// others allow their principals. With no policy left, every connection is closed.
func networkRBACFilter(statPrefix string, authz *ir.Authorization) *listenerv3.Filter {
	policies := map[string]*rbacconfigv3.Policy{}
	for _, p := range authz.Policies {
		if len(p.Paths) > 0 || len(p.Methods) > 0 {
			continue
		}
		policies[p.Name] = &rbacconfigv3.Policy{
			Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
			Principals:  rbacPrincipals(&p),
		}
	}
	cfg := &netrbacv3.RBAC{StatPrefix: statPrefix, Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW, Policies: policies}}
	return &listenerv3.Filter{Name: networkRBACFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(cfg)}}
}
