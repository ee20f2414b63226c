// Package proxyreport lets the leader know which proxies are connected to every replica's xDS
// server. Each replica polls its own server's connected proxies and, when the set changes (at
// most once per poll interval, and at every heartbeat), writes it to a ConfigMap of its own in
// the operator's namespace; the leader reads them all (Connected). A replica that stops cleanly
// deletes its report; one that dies stops refreshing it, and its report is ignored once stale.
package proxyreport

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
)

// The report ConfigMaps.
const (
	// NamePrefix starts each replica's report: sluice-proxies-<replica>.
	NamePrefix = "sluice-proxies-"
	// Component is zerotrust.LabelComponent's value on reports.
	Component = "proxy-report"
	// KeyProxies holds the proxies, one "<namespace>/<pod> <flavour>" a line, sorted (about 50
	// bytes each: a report stays under a ConfigMap's 1 MiB up to some 20,000 proxies per replica);
	// KeyReportedAt is when they were last reported.
	KeyProxies    = "proxies"
	KeyReportedAt = "reported-at"
	fieldOwner    = "sluice-proxyreport"
)

// Defaults of a Reporter's zero fields and of how old a report may be.
const (
	DefaultInterval  = time.Second
	DefaultHeartbeat = 30 * time.Second
	// StaleAfter: a report not refreshed for this long (three heartbeats) is ignored.
	StaleAfter = 3 * DefaultHeartbeat
)

// Proxy is a connected proxy's pod and flavour, from its node ID.
type Proxy struct {
	Namespace, Pod, Flavour string
}

// String is the proxy's line in a report.
func (p Proxy) String() string { return p.Namespace + "/" + p.Pod + " " + p.Flavour }

// parseLine reads a report's line; false when it is not one.
func parseLine(line string) (Proxy, bool) {
	key, flavour, ok := strings.Cut(line, " ")
	ns, pod, ok2 := strings.Cut(key, "/")
	if !ok || !ok2 || ns == "" || pod == "" || flavour == "" {
		return Proxy{}, false
	}
	return Proxy{Namespace: ns, Pod: pod, Flavour: flavour}, true
}

// FromNodeID reads a node ID (<flavour>~<podIP>~<pod>.<namespace>~<namespace>.svc.cluster.local,
// docs/xds.md); false when it is not one. A pod name may hold dots; a namespace cannot.
func FromNodeID(id string) (Proxy, bool) {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return Proxy{}, false
	}
	i := strings.LastIndexByte(parts[2], '.')
	if i <= 0 || i == len(parts[2])-1 || parts[0] == "" {
		return Proxy{}, false
	}
	return Proxy{Namespace: parts[2][i+1:], Pod: parts[2][:i], Flavour: parts[0]}, true
}

// proxiesOf is the distinct proxies of node IDs, sorted; IDs that are not Sluice node IDs are left out.
func proxiesOf(nodeIDs []string) []Proxy {
	var out []Proxy
	for _, id := range nodeIDs {
		if p, ok := FromNodeID(id); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Proxy) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

// Reporter writes this replica's connected proxies to its report. It runs on every replica.
type Reporter struct {
	Client    client.Client
	Namespace string
	// Replica names the report; the pod's name in a cluster.
	Replica string
	// NodeIDs lists the node IDs of the proxies connected to this replica's xDS server.
	NodeIDs func() []string
	// Interval is how often NodeIDs is polled, and the shortest time between two writes.
	Interval time.Duration
	// Heartbeat is how often an unchanged report is written again, so it does not go stale.
	Heartbeat time.Duration
	Clock     clock.WithTicker
}

// NeedLeaderElection is false: every replica reports its own proxies.
func (*Reporter) NeedLeaderElection() bool { return false }

// Start reports until ctx ends, then deletes the report.
func (r *Reporter) Start(ctx context.Context) error {
	if r.Interval <= 0 {
		r.Interval = DefaultInterval
	}
	if r.Heartbeat <= 0 {
		r.Heartbeat = DefaultHeartbeat
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	logger := log.FromContext(ctx).WithName("proxyreport")
	var (
		last    []Proxy
		written time.Time
		ok      bool
		lastErr string // logged once until it changes (e.g. the namespace does not exist)
	)
	tick := r.Clock.NewTicker(r.Interval)
	defer tick.Stop()
	for {
		now := r.Clock.Now()
		proxies := proxiesOf(r.NodeIDs())
		if !ok || !slices.Equal(proxies, last) || now.Sub(written) >= r.Heartbeat {
			if err := r.write(ctx, proxies, now); err != nil {
				switch {
				case ctx.Err() != nil || err.Error() == lastErr:
				case apierrors.IsNotFound(err): // the operator's namespace does not exist (tests, make run)
					logger.Info("not reporting the connected proxies: StrictReady does not count them", "error", err.Error())
				default:
					logger.Error(err, "reporting the connected proxies (StrictReady does not count them until it works)")
				}
				lastErr = err.Error()
			} else {
				last, written, ok, lastErr = proxies, now, true, ""
			}
		}
		select {
		case <-ctx.Done():
			r.remove()
			return nil
		case <-tick.C():
		}
	}
}

func (r *Reporter) name() string { return NamePrefix + r.Replica }

func (r *Reporter) write(ctx context.Context, proxies []Proxy, now time.Time) error {
	var lines strings.Builder
	for _, p := range proxies {
		lines.WriteString(p.String() + "\n")
	}
	cm := corev1ac.ConfigMap(r.name(), r.Namespace).
		WithLabels(map[string]string{zerotrust.LabelComponent: Component, zerotrust.LabelManagedBy: zerotrust.ManagedBy}).
		WithData(map[string]string{KeyProxies: lines.String(), KeyReportedAt: now.UTC().Format(time.RFC3339Nano)})
	if err := r.Client.Apply(ctx, cm, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ConfigMap %s/%s: %w", r.Namespace, r.name(), err)
	}
	return nil
}

// remove deletes the report when the replica stops, so the leader does not wait for it to go stale.
func (r *Reporter) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name = r.Namespace, r.name()
	_ = r.Client.Delete(ctx, cm)
}

// Connected reads every replica's report in namespace and returns the pods with a connected proxy,
// ignoring reports older than staleAfter; next is when the oldest report counted goes stale (the
// answer must be read again then).
func Connected(ctx context.Context, c client.Reader, namespace string, now time.Time, staleAfter time.Duration) (
	pods map[types.NamespacedName]bool, next time.Time, err error) {
	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{zerotrust.LabelComponent: Component}); err != nil {
		return nil, time.Time{}, fmt.Errorf("listing the proxy reports: %w", err)
	}
	pods = map[types.NamespacedName]bool{}
	for i := range list.Items {
		cm := &list.Items[i]
		at, err := time.Parse(time.RFC3339Nano, cm.Data[KeyReportedAt])
		if err != nil || !now.Before(at.Add(staleAfter)) {
			continue
		}
		for line := range strings.Lines(cm.Data[KeyProxies]) {
			if p, ok := parseLine(strings.TrimSuffix(line, "\n")); ok {
				pods[types.NamespacedName{Namespace: p.Namespace, Name: p.Pod}] = true
			}
		}
		if stale := at.Add(staleAfter); next.IsZero() || stale.Before(next) {
			next = stale
		}
	}
	return pods, next, nil
}
