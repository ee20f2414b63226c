package kubectlsluice

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
)

// proxyRow is one connected proxy as proxy-status shows it: its streams on one replica merged.
type proxyRow struct {
	NodeID    string `json:"nodeID"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Flavour   string `json:"flavour"`
	// Identity is the SPIFFE ID of the pod's identity certificate; empty when none is issued.
	Identity  string `json:"identity,omitempty"`
	Replica   string `json:"replica"`
	UserAgent string `json:"userAgent,omitempty"`
	// Acked is the last ACKed version per type (by its short name: listeners, routes, ...).
	Acked map[string]string `json:"acked"`
	// Sync is SYNCED (every response sent was ACKed), STALE (one is not answered yet) or NACKED.
	Sync     string `json:"sync"`
	LastNACK *nack  `json:"lastNACK,omitempty"`
}

func (e *env) proxyStatusCommand() *cobra.Command {
	var (
		op  operatorFlags
		out outputFlag
		all bool
	)
	cmd := &cobra.Command{
		Use:   "proxy-status",
		Short: "List every proxy connected to the operator: flavour, identity, ACKed versions, sync, last NACK",
		Example: "  kubectl sluice proxy-status -A\n" +
			"  kubectl sluice proxy-status -n shop --token \"$(kubectl create token mesh-debugger)\"",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return e.proxyStatus(cmd.Context(), op, out, all)
		},
	}
	op.add(cmd)
	out.add(cmd)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "Proxies of every namespace (default: the current namespace's)")
	return cmd
}

func (e *env) proxyStatus(ctx context.Context, op operatorFlags, out outputFlag, all bool) error {
	return e.withProxies(ctx, op, func(ns string, reps []replica, f fetched) error {
		rows := proxyRows(f)
		kept := rows[:0]
		for _, r := range rows {
			if all || r.Namespace == ns {
				kept = append(kept, r)
			}
		}
		rows = kept
		k, err := e.kube()
		if err != nil {
			return err
		}
		for i := range rows {
			rows[i].Identity = identityOf(ctx, k, rows[i].Namespace, rows[i].Pod)
		}
		if out.structured() {
			return out.print(e.out(), rows)
		}
		return e.printProxyRows(rows, len(reps) > 1)
	})
}

// proxyRows merges each node's streams on each replica, and finds each node's last NACK (the one
// a stream still holds, or the newest in the replicas' history).
func proxyRows(f fetched) []proxyRow {
	var rows []proxyRow
	for _, rep := range sortedKeys(f.streams) {
		byNode := map[string]*proxyRow{}
		var order []string
		for _, s := range f.streams[rep] {
			r := byNode[s.NodeID]
			if r == nil {
				ns, pod, _ := podOfNode(s.NodeID)
				r = &proxyRow{NodeID: s.NodeID, Namespace: ns, Pod: pod, Flavour: s.Flavour, Replica: rep, UserAgent: s.UserAgent,
					Acked: map[string]string{}, Sync: "SYNCED"}
				byNode[s.NodeID] = r
				order = append(order, s.NodeID)
			}
			for _, t := range xdsTypes {
				ts, ok := s.Types[t.url]
				if !ok {
					continue
				}
				if ts.AckedVersion != "" {
					r.Acked[t.name] = ts.AckedVersion
				}
				switch {
				case ts.NACK != nil:
					r.Sync = "NACKED"
					r.LastNACK = newer(r.LastNACK, ts.NACK)
				case ts.SentVersion != ts.AckedVersion && r.Sync == "SYNCED":
					r.Sync = "STALE"
				}
			}
		}
		for _, id := range order {
			rows = append(rows, *byNode[id])
		}
	}
	for i := range rows {
		for j := range f.nacks {
			if f.nacks[j].NodeID == rows[i].NodeID {
				rows[i].LastNACK = newer(rows[i].LastNACK, &f.nacks[j])
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		if rows[i].Pod != rows[j].Pod {
			return rows[i].Pod < rows[j].Pod
		}
		return rows[i].NodeID < rows[j].NodeID
	})
	return rows
}

func newer(a, b *nack) *nack {
	if a == nil || b.Time.After(a.Time) {
		return b
	}
	return a
}

// identityOf is the SPIFFE ID of the pod's identity: the URI of the cert-manager Certificate
// Sluice issues for its service account (zerotrust.CertificateName); "" when none.
func identityOf(ctx context.Context, k *kube, ns, podName string) string {
	if podName == "" {
		return ""
	}
	pod := &corev1.Pod{}
	if err := get(ctx, k.core, "pods", ns, podName, pod); err != nil {
		return ""
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	gvr := zerotrust.CertificateGVK.GroupVersion().WithResource("certificates")
	cert, err := k.dynamic.Resource(gvr).Namespace(ns).Get(ctx, zerotrust.CertificateName(sa), metav1.GetOptions{})
	if err != nil {
		return "" // none issued, or cert-manager is not installed
	}
	uris, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "uris")
	if len(uris) == 0 {
		return ""
	}
	return uris[0]
}

func (e *env) printProxyRows(rows []proxyRow, replicas bool) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(e.out(), "No proxy is connected.")
		return err
	}
	w := tabwriter.NewWriter(e.out(), 0, 4, 2, ' ', 0)
	head := []string{"NAME", "FLAVOUR", "IDENTITY"}
	if replicas {
		head = append(head, "OPERATOR")
	}
	for _, t := range xdsTypes {
		head = append(head, t.short)
	}
	head = append(head, "SYNC", "LAST NACK")
	fmt.Fprintln(w, strings.Join(head, "\t"))
	now := e.Clock.Now()
	for _, r := range rows {
		name := r.NodeID
		if r.Pod != "" {
			name = r.Pod + "." + r.Namespace
		}
		cols := []string{name, r.Flavour, orDash(r.Identity)}
		if replicas {
			cols = append(cols, r.Replica)
		}
		for _, t := range xdsTypes {
			cols = append(cols, orDash(r.Acked[t.name]))
		}
		cols = append(cols, r.Sync, lastNACK(r.LastNACK, now))
		fmt.Fprintln(w, strings.Join(cols, "\t"))
	}
	return w.Flush()
}

// lastNACK is "<type> <age> ago: <message>", the message cut to keep the table readable
// (-o yaml has it whole).
func lastNACK(n *nack, now time.Time) string {
	if n == nil {
		return "-"
	}
	typ := n.TypeURL
	for _, t := range xdsTypes {
		if t.url == n.TypeURL {
			typ = t.short
		}
	}
	msg := strings.Join(strings.Fields(n.Message), " ")
	if len(msg) > 60 {
		msg = msg[:57] + "..."
	}
	age := now.Sub(n.Time).Round(time.Second)
	return fmt.Sprintf("%s %s ago: %s", typ, age, msg)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
