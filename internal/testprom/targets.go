package testprom

import (
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/prometheus/common/model"

	"github.com/sluice-mesh/sluice/internal/podnet"
)

// initialGroups is Options.Targets (labelled with ExtraLabels only) followed by
// Options.TargetGroups.
func initialGroups(opts Options) []TargetGroup {
	groups := cloneGroups(opts.TargetGroups)
	if len(opts.Targets) > 0 || len(groups) == 0 {
		groups = append([]TargetGroup{{Targets: slices.Clone(opts.Targets)}}, groups...)
	}
	return groups
}

// cloneGroups copies groups, so a caller changing its slices or maps later changes nothing.
func cloneGroups(groups []TargetGroup) []TargetGroup {
	out := make([]TargetGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, TargetGroup{Targets: slices.Clone(g.Targets), Labels: maps.Clone(g.Labels)})
	}
	return out
}

// staticConfigs checks the groups and turns them into the scrape job's static_configs, each
// group's labels over the extra ones. Prometheus would reject a bad label name too, but only in
// its log.
func staticConfigs(groups []TargetGroup, extra map[string]string) ([]any, error) {
	configs := []any{}
	for _, g := range groups {
		for _, t := range g.Targets {
			if err := checkTarget(t); err != nil {
				return nil, err
			}
		}
		labels := maps.Clone(extra)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, g.Labels)
		for _, name := range slices.Sorted(maps.Keys(labels)) {
			if !model.LegacyValidation.IsValidLabelName(name) {
				return nil, fmt.Errorf("target label %q: not a valid Prometheus label name", name)
			}
		}
		config := map[string]any{"targets": nonNil(g.Targets)}
		if len(labels) > 0 {
			config["labels"] = labels
		}
		configs = append(configs, config)
	}
	if len(configs) == 0 {
		configs = append(configs, map[string]any{"targets": []string{}})
	}
	return configs, nil
}

func checkTarget(t string) error {
	host, _, err := net.SplitHostPort(t)
	if err != nil {
		return fmt.Errorf("target %q: %w", t, err)
	}
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLoopback() || podnet.Inside() && podNet.Contains(ip)) {
		return nil
	}
	return fmt.Errorf("target %q: tests may only scrape loopback addresses (and pod IPs inside internal/podnet)", t)
}

// podNet is podnet.PodCIDR: local addresses inside the namespace, never routed outside it.
var podNet = func() *net.IPNet { _, n, _ := net.ParseCIDR(podnet.PodCIDR); return n }()

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
