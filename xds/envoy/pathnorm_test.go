package envoy

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
)

// No Envoy binary runs here, so this test reads the emitted configuration and replays, step by
// step, what Envoy does with a request's :path under it (the connection manager's documented path
// handling, then the RBAC filter's matchers as emitted). It shows for each spelling of a denied
// path why the application cannot receive that path; it is a check of the config, not of Envoy.

// deniedPath is what the teller may not call on ledger (testdata/authz_envoy.in.yaml): its rule
// allows exactly /ledger/accounts, the prefix /ledger/public/ and the suffix .json.
const deniedPath = "/ledger/admin/delete"

const teller = "spiffe://cluster.local/ns/bank/sa/teller"

// pathCases are spellings of deniedPath (or ways to it through an allowed prefix or suffix). why
// says what in the emitted config stops each.
var pathCases = []struct {
	name, path, why string
	want            outcome
}{
	{"plain", "/ledger/admin/delete", "no policy matches", denied},
	{"double slash", "//ledger//admin//delete", "merge_slashes", denied},
	{"double slash before ..", "/ledger/public//../admin/delete", "normalize_path removes the empty segment: the application gets /ledger/public/admin/delete", allowedElsewhere},
	{"dot segment", "/ledger/public/./../admin/delete", "normalize_path", denied},
	{"dot-dot segment", "/ledger/public/../admin/delete", "normalize_path", denied},
	{"%2F", "/ledger/public/..%2Fadmin/delete", "path_with_escaped_slashes_action REJECT_REQUEST", rejected},
	{"%2f", "/ledger/public/..%2fadmin%2fdelete", "path_with_escaped_slashes_action REJECT_REQUEST", rejected},
	{"%5C", "/ledger/public/..%5Cadmin/delete", "path_with_escaped_slashes_action REJECT_REQUEST", rejected},
	{"%2e%2e", "/ledger/public/%2e%2e/admin/delete", "normalize_path decodes %2e and removes the segment", denied},
	{".%2E", "/ledger/public/.%2E/admin/delete", "normalize_path decodes %2E and removes the segment", denied},
	{"encoded letter", "/ledger/%61dmin/delete", "normalize_path decodes unreserved characters", denied},
	{"upper case", "/LEDGER/ADMIN/DELETE", "matchers are case-sensitive; no policy matches", denied},
	{"upper case after ..", "/ledger/public/../ADMIN/delete", "normalize_path, then no policy matches", denied},
	{"#fragment", "/ledger/accounts#/../admin/delete", "Envoy rejects a fragment (its default since 1.19.1)", rejected},
	{";param on prefix", "/ledger/public/..;/admin/delete", "the prefix matcher allows no ';'", denied},
	{";param on suffix", "/ledger/admin/delete;.json", "the suffix matcher allows no ';'", denied},
	{"?query", "/ledger/admin/delete?x=.json", "url_path excludes the query", denied},
	{"?query with path", "/ledger/admin/delete?/ledger/accounts", "url_path excludes the query", denied},
	{"double encoding", "/ledger/public/%252e%252e/admin/delete", "the prefix matcher allows no '%'", denied},
	{"double-encoded slash", "/ledger/public/..%252Fadmin/delete", "the prefix matcher allows no '%'", denied},
	{"trailing slash", "/ledger/admin/delete/", "no policy matches", denied},
	{"encoded suffix", "/ledger/admin/delete%2Ejson", "normalize_path decodes %2E: the application gets /ledger/admin/delete.json", allowedElsewhere},
}

type outcome string

const (
	rejected         outcome = "rejected with 400"
	denied           outcome = "denied by RBAC"
	allowedElsewhere outcome = "allowed, and the application receives another path"
	bypass           outcome = "BYPASS: allowed, and the application receives the denied path"
)

func TestEnvoyPathNormalisation(t *testing.T) {
	hcm, rules := ledgerInbound(t)
	for _, tc := range pathCases {
		t.Run(tc.name, func(t *testing.T) {
			got, detail := replay(hcm, rules, tc.path)
			if got != tc.want {
				t.Errorf("%s: %s (%s), want %s because %s", tc.path, got, detail, tc.want, tc.why)
			}
			t.Logf("%-40s %s (%s): %s", tc.path, got, detail, tc.why)
		})
	}
	if len(pathCases) < 10 {
		t.Errorf("only %d encodings", len(pathCases))
	}
}

// TestEnvoyPathNormalisationIsNeeded takes away the connection manager's settings and the
// plain-path narrowing: then a good part of the cases reach the denied path, so the config is
// what stops them.
func TestEnvoyPathNormalisationIsNeeded(t *testing.T) {
	hcm, _ := ledgerInbound(t)
	bare := proto.Clone(hcm).(*hcmv3.HttpConnectionManager)
	bare.NormalizePath, bare.MergeSlashes, bare.PathWithEscapedSlashesAction = nil, false, hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT
	in := readIR(t, filepath.Join("testdata", "authz_envoy.in.yaml"))
	rules := unpackRBAC(t, rbacFilter(in.Services[0].Ports[0].Subsets[0].Endpoints[0].Authorization)) // not narrowed
	var bypassed []string
	for _, tc := range pathCases {
		if got, _ := replay(bare, rules, tc.path); got == bypass {
			bypassed = append(bypassed, tc.name)
		}
	}
	if len(bypassed) < 8 {
		t.Errorf("without the settings only %v bypass the rules; the cases test too little", bypassed)
	}
	t.Logf("without normalisation and plain paths, %d cases bypass: %v", len(bypassed), bypassed)
}

// ledgerInbound is the connection manager and RBAC rules of ledger's inbound TLS chain on 8080.
func ledgerInbound(t *testing.T) (*hcmv3.HttpConnectionManager, *rbacconfigv3.RBAC) {
	t.Helper()
	s := translateGolden(t, "authz_envoy", filepath.Join("testdata", "authz_envoy.in.yaml"))
	var chain *listenerv3.FilterChain
	for _, fc := range s.Listeners[FlavourEnvoy][VirtualInboundListener].GetFilterChains() {
		if fc.GetName() == "inbound|8080|10.1.0.1|tls" {
			chain = fc
		}
	}
	if chain == nil {
		t.Fatal("no chain inbound|8080|10.1.0.1|tls")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := chain.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if f := hcm.GetHttpFilters(); len(f) == 0 || f[0].GetName() != rbacFilterName {
		t.Fatalf("the RBAC filter is not the first HTTP filter: %v", f)
	}
	return hcm, unpackRBAC(t, hcm.GetHttpFilters()[0])
}

func unpackRBAC(t *testing.T, f *hcmv3.HttpFilter) *rbacconfigv3.RBAC {
	t.Helper()
	cfg := &rbacv3.RBAC{}
	if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.GetRules()
}

// replay sends the teller's GET of raw through hcm's path handling and rules, then has a lenient
// application resolve what it receives.
func replay(hcm *hcmv3.HttpConnectionManager, rules *rbacconfigv3.RBAC, raw string) (outcome, string) {
	path, query, err := envoyPath(hcm, raw)
	if err != nil {
		return rejected, err.Error()
	}
	if !rbacAllows(rules, teller, "GET", path) {
		return denied, "RBAC saw " + path
	}
	forwarded := path + query // what the application receives
	if got := lenientApp(forwarded); got == deniedPath {
		return bypass, fmt.Sprintf("RBAC saw %s, the application resolved %s to %s", path, forwarded, got)
	}
	return allowedElsewhere, "the application receives " + forwarded
}

// envoyPath is the connection manager's handling of :path, in Envoy's order, as its settings ask:
// a fragment is rejected (Envoy's default: runtime guard http_reject_path_with_fragment); escaped
// slashes are handled (path_with_escaped_slashes_action), then the path is normalised
// (normalize_path: RFC 3986 decoding of unreserved characters and removal of dot segments, %2e
// included), then slashes merged (merge_slashes). It returns the path, which the RBAC filter
// matches (url_path excludes the query) and Envoy forwards, and the query.
func envoyPath(hcm *hcmv3.HttpConnectionManager, raw string) (path, query string, err error) {
	if strings.Contains(raw, "#") {
		return "", "", fmt.Errorf("a fragment")
	}
	path, query = raw, ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		path, query = raw[:i], raw[i:]
	}
	if hcm.GetPathWithEscapedSlashesAction() == hcmv3.HttpConnectionManager_REJECT_REQUEST {
		lower := strings.ToLower(path)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
			return "", "", fmt.Errorf("an escaped slash")
		}
	}
	if hcm.GetNormalizePath().GetValue() {
		path = removeDotSegments(decodeUnreserved(path))
	}
	if hcm.GetMergeSlashes() {
		for strings.Contains(path, "//") {
			path = strings.ReplaceAll(path, "//", "/")
		}
	}
	return path, query, nil
}

// decodeUnreserved decodes the percent-encoded unreserved characters (RFC 3986 2.3).
func decodeUnreserved(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			if s, err := url.PathUnescape(p[i : i+3]); err == nil && len(s) == 1 && isUnreserved(s[0]) {
				b.WriteString(s)
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

// removeDotSegments is RFC 3986 5.2.4 on an absolute path.
func removeDotSegments(p string) string {
	var out []string
	segs := strings.Split(p, "/")[1:]
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// lenientApp is the most forgiving application imaginable: it decodes the path twice, drops
// ";parameters" from segments, ignores case, merges slashes, resolves dot segments and ignores a
// trailing slash.
func lenientApp(target string) string {
	p, _, _ := strings.Cut(target, "?")
	for range 2 {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	p = strings.ToLower(strings.Join(segs, "/"))
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return strings.TrimSuffix(removeDotSegments(p), "/")
}

// rbacAllows evaluates an ALLOW policy set as Envoy does, for the matchers Sluice emits.
func rbacAllows(rules *rbacconfigv3.RBAC, principal, method, path string) bool {
	for _, p := range rules.GetPolicies() {
		perm, id := false, false
		for _, x := range p.GetPermissions() {
			perm = perm || permits(x, method, path)
		}
		for _, x := range p.GetPrincipals() {
			id = id || stringMatches(x.GetAuthenticated().GetPrincipalName(), principal)
		}
		if perm && id {
			return true
		}
	}
	return false
}

func permits(p *rbacconfigv3.Permission, method, path string) bool {
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_Any:
		return r.Any
	case *rbacconfigv3.Permission_AndRules:
		for _, x := range r.AndRules.GetRules() {
			if !permits(x, method, path) {
				return false
			}
		}
		return true
	case *rbacconfigv3.Permission_OrRules:
		for _, x := range r.OrRules.GetRules() {
			if permits(x, method, path) {
				return true
			}
		}
		return false
	case *rbacconfigv3.Permission_NotRule:
		return !permits(r.NotRule, method, path)
	case *rbacconfigv3.Permission_UrlPath:
		return stringMatches(r.UrlPath.GetPath(), path)
	case *rbacconfigv3.Permission_Header:
		return r.Header.GetName() == ":method" && stringMatches(r.Header.GetStringMatch(), method)
	}
	panic(fmt.Sprintf("permission %T is not modelled", p.GetRule()))
}

func stringMatches(m *matcherv3.StringMatcher, s string) bool {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(s, p.Contains)
	}
	return false
}

// TestEnvoyRBACNormalisesPaths: in every golden, every Envoy connection manager with an RBAC filter
// normalises paths as TestEnvoyPathNormalisation assumes.
func TestEnvoyRBACNormalisesPaths(t *testing.T) {
	seen := 0
	for name, path := range goldenInputs(t) {
		s := translateGolden(t, name, path)
		for lname, l := range s.Listeners[FlavourEnvoy] {
			hcms, err := listenerHCMs(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hcms {
				if f := h.hcm.GetHttpFilters(); len(f) == 0 || f[0].GetName() != rbacFilterName {
					continue
				}
				seen++
				if !h.hcm.GetNormalizePath().GetValue() || !h.hcm.GetMergeSlashes() ||
					h.hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
					t.Errorf("%s: listener %q %s runs RBAC without normalising paths", name, lname, h.where)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no golden has an Envoy RBAC filter")
	}
}
