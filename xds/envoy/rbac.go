package envoy

import (
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Authorization for proxyless gRPC servers: grpc-go's server-side RBAC HTTP filter (gRFC A41,
// grpc-go v1.85 internal/xds/httpfilter/rbac and internal/xds/rbac). Only matchers it implements
// are used:
//   - principals: authenticated.principal_name, a StringMatcher that grpc-go matches against each
//     URI SAN of the peer's leaf certificate (then DNS SANs, then the subject, when it has no URI
//     SAN) and only on TLS connections;
//   - permissions: url_path (matched against the RPC's full method, "/package.Service/Method"),
//     a header matcher on ":method" (always "POST" for gRPC), and_rules, or_rules, any.
//
// grpc-go NACKs a policy with a condition or checked_condition, header matchers on ":scheme" or
// "grpc-*" headers, and the permission and principal types it does not know; it ignores
// action LOG (no enforcement).

const rbacFilterName = "envoy.filters.http.rbac"

// rbacFilter is the HTTP filter enforcing authz on a proxyless gRPC server: ALLOW with one policy
// per rule, so a call that no policy matches is denied (PERMISSION_DENIED in gRPC).
func rbacFilter(authz *ir.Authorization) *hcmv3.HttpFilter { return rbacFilterWith(authz, false) }

// rbacFilterWith is rbacFilter; with plainPaths, prefix and suffix path matchers allow only plain
// paths (see plainPath).
func rbacFilterWith(authz *ir.Authorization, plainPaths bool) *hcmv3.HttpFilter {
	policies := make(map[string]*rbacconfigv3.Policy, len(authz.Policies))
	for _, p := range authz.Policies {
		policies[p.Name] = rbacPolicyWith(&p, plainPaths)
	}
	cfg := &rbacv3.RBAC{Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW, Policies: policies}}
	return &hcmv3.HttpFilter{Name: rbacFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

// rbacPolicy allows the calls of one rule: any of its principals, and any of its paths (when it
// lists some) and any of its methods (when it lists some).
func rbacPolicy(p *ir.AuthorizationPolicy) *rbacconfigv3.Policy { return rbacPolicyWith(p, false) }

func rbacPolicyWith(p *ir.AuthorizationPolicy, plainPaths bool) *rbacconfigv3.Policy {
	out := &rbacconfigv3.Policy{Principals: rbacPrincipals(p)}
	var and []*rbacconfigv3.Permission
	if len(p.Paths) > 0 {
		var or []*rbacconfigv3.Permission
		for _, m := range p.Paths {
			perm := urlPath(stringMatcher(m))
			if plainPaths && m.Exact == "" {
				perm = plainPath(perm)
			}
			or = append(or, perm)
		}
		and = append(and, anyPermission(or))
	}
	if len(p.Methods) > 0 {
		var or []*rbacconfigv3.Permission
		for _, method := range p.Methods {
			or = append(or, &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name:                 ":method",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(ir.StringMatch{Exact: method})},
			}}})
		}
		and = append(and, anyPermission(or))
	}
	switch len(and) {
	case 0:
		out.Permissions = []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}}
	case 1:
		out.Permissions = []*rbacconfigv3.Permission{and[0]}
	default:
		out.Permissions = []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_AndRules{
			AndRules: &rbacconfigv3.Permission_Set{Rules: and},
		}}}
	}
	return out
}

// rbacPrincipals are the callers of one rule: a peer certificate whose SAN one of its principal
// matchers matches.
func rbacPrincipals(p *ir.AuthorizationPolicy) []*rbacconfigv3.Principal {
	out := make([]*rbacconfigv3.Principal, 0, len(p.Principals))
	for _, m := range p.Principals {
		out = append(out, &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{
			Authenticated: &rbacconfigv3.Principal_Authenticated{PrincipalName: stringMatcher(m)},
		}})
	}
	return out
}

func urlPath(m *matcherv3.StringMatcher) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{
		UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}},
	}}
}

// anyPermission is the permission that one of ps matches.
func anyPermission(ps []*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{OrRules: &rbacconfigv3.Permission_Set{Rules: ps}}}
}

func stringMatcher(m ir.StringMatch) *matcherv3.StringMatcher {
	switch {
	case m.Prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}}
	case m.Suffix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: m.Suffix}}
	default:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}}
	}
}
