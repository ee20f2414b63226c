package envoy

import (
	"maps"
	"regexp"
	"slices"
	"testing"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
)

// extractTags applies the regex tag specifiers the way Envoy does: every specifier sees the full
// stat name; the first capture group is cut (after all have run), the second (or the first) is
// the value.
func extractTags(t *testing.T, name string) (string, map[string]string) {
	t.Helper()
	tags := map[string]string{}
	cut := make([]bool, len(name))
	for _, ts := range statsTags("", "", "") {
		re := ts.GetRegex()
		if re == "" {
			continue
		}
		m := regexp.MustCompile(re).FindStringSubmatchIndex(name)
		if len(m) < 4 {
			continue
		}
		v := 2
		if len(m) >= 6 {
			v = 4
		}
		tags[ts.GetTagName()] = name[m[v]:m[v+1]]
		for i := m[2]; i < m[3]; i++ {
			cut[i] = true
		}
	}
	var out []byte
	for i := range name {
		if !cut[i] {
			out = append(out, name[i])
		}
	}
	return string(out), tags
}

func TestStatsTags(t *testing.T) {
	for _, tc := range []struct {
		stat, name string
		tags       map[string]string
	}{{
		stat: "cluster.outbound|8080|v1|checkout.shop.svc.cluster.local.upstream_rq_total",
		name: "cluster.upstream_rq_total",
		tags: map[string]string{
			TagClusterName: "outbound|8080|v1|checkout.shop.svc.cluster.local", TagDestinationPort: "8080",
			TagDestinationSubset: "v1", TagDestinationService: "checkout.shop.svc.cluster.local",
		},
	}, {
		stat: "cluster.outbound|9090||ledger.payments.svc.cluster.local.circuit_breakers.default.rq_open",
		name: "cluster.circuit_breakers.default.rq_open",
		tags: map[string]string{
			TagClusterName: "outbound|9090||ledger.payments.svc.cluster.local", TagDestinationPort: "9090",
			TagDestinationSubset: "", TagDestinationService: "ledger.payments.svc.cluster.local",
		},
	}, {
		stat: "cluster.PassthroughCluster.upstream_cx_total",
		name: "cluster.upstream_cx_total",
		tags: map[string]string{TagClusterName: PassthroughCluster},
	}, {
		stat: "http.outbound_shop_checkout_8080.downstream_rq_total",
		name: "http.outbound_shop_checkout_8080.downstream_rq_total", // Envoy's own extractor handles it
		tags: map[string]string{},
	}} {
		name, tags := extractTags(t, tc.stat)
		if name != tc.name {
			t.Errorf("%s: extracted name %q, want %q", tc.stat, name, tc.name)
		}
		if !maps.Equal(tags, tc.tags) {
			t.Errorf("%s: tags %v, want %v", tc.stat, tags, tc.tags)
		}
	}
}

func TestStatsTagsSource(t *testing.T) {
	fixed := map[string]string{}
	for _, ts := range statsTags("checkout", "v1", "shop") {
		if v := ts.GetFixedValue(); v != "" {
			fixed[ts.GetTagName()] = v
		}
	}
	want := map[string]string{TagSourceWorkload: "checkout", TagSourceVersion: "v1", TagSourceNamespace: "shop"}
	if !maps.Equal(fixed, want) {
		t.Errorf("fixed tags %v, want %v", fixed, want)
	}
	for _, ts := range statsTags("", "", "") {
		if ts.GetFixedValue() != "" {
			t.Errorf("empty source gave tag %s", ts.GetTagName())
		}
	}
	if !slices.ContainsFunc(statsTags("", "", ""), func(ts *metricsv3.TagSpecifier) bool { return ts.GetTagName() == "envoy.response_code" }) {
		t.Error("Envoy's response_code tag is missing")
	}
}
