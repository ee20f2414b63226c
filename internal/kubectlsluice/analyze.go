package kubectlsluice

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// ExitFindings is analyze's exit code when it found an Error.
const ExitFindings = 6

func (e *env) analyzeCommand() *cobra.Command {
	var (
		out               outputFlag
		all               bool
		operatorNamespace string
	)
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Lint Sluice objects against the cluster: dangling references, conflicts, unreachable routes, STRICT without proxies",
		Long: "analyze reads the Rollouts, TrafficPolicies and ZeroTrusts of a namespace (-n) or of all (-A), with the\n" +
			"Services, Deployments and pods they refer to, and reports what cannot work as written. It exits 6 when\n" +
			"it found an Error, 0 otherwise (Warnings included).",
		Example: "  kubectl sluice analyze -n shop\n  kubectl sluice analyze -A -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return e.analyze(cmd.Context(), all, operatorNamespace, out)
		},
	}
	out.add(cmd)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "Analyze every namespace")
	cmd.Flags().StringVar(&operatorNamespace, "operator-namespace", "sluice-system", "The operator's namespace, whose ZeroTrust with an empty selector is mesh-wide")
	return cmd
}

func (e *env) analyze(ctx context.Context, all bool, operatorNamespace string, out outputFlag) error {
	k, err := e.kube()
	if err != nil {
		return err
	}
	snap := cluster{OperatorNamespace: operatorNamespace}
	scopes := []string{""} // every namespace
	if !all {
		ns, err := e.namespace()
		if err != nil {
			return err
		}
		snap.Namespaces = []string{ns}
		scopes = []string{ns}
		if ns != operatorNamespace {
			scopes = append(scopes, operatorNamespace) // for its mesh-wide ZeroTrusts
		}
	}
	if err := gatherCluster(ctx, k, scopes, &snap); err != nil {
		return err
	}
	findings := analyze(snap)
	if out.structured() {
		if err := out.print(e.out(), findings); err != nil {
			return err
		}
	} else if err := e.printFindings(findings, all); err != nil {
		return err
	}
	for _, f := range findings {
		if f.Severity == SeverityError {
			return exitf(ExitFindings, "analyze found errors")
		}
	}
	return nil
}

// gatherCluster lists what analyze reads in each scope ("" is every namespace). Of the scopes
// after the first (the operator's namespace) only the ZeroTrusts are read: they may be mesh-wide.
func gatherCluster(ctx context.Context, k *kube, scopes []string, snap *cluster) error {
	for i, ns := range scopes {
		var zt meshv1alpha1.ZeroTrustList
		if err := list(ctx, k.mesh, zeroTrustsResource, ns, &zt); err != nil {
			return err
		}
		snap.ZeroTrusts = append(snap.ZeroTrusts, zt.Items...)
		if i > 0 {
			continue
		}
		var (
			ro   meshv1alpha1.RolloutList
			tp   meshv1alpha1.TrafficPolicyList
			svc  corev1.ServiceList
			dep  appsv1.DeploymentList
			pods corev1.PodList
		)
		for _, l := range []struct {
			c        rest.Interface
			resource string
			into     runtime.Object
		}{
			{k.mesh, rolloutsResource, &ro}, {k.mesh, trafficPoliciesResource, &tp},
			{k.core, "services", &svc}, {k.apps, "deployments", &dep}, {k.core, "pods", &pods},
		} {
			if err := list(ctx, l.c, l.resource, ns, l.into); err != nil {
				return err
			}
		}
		snap.Rollouts, snap.TrafficPolicies = ro.Items, tp.Items
		snap.Services, snap.Deployments, snap.Pods = svc.Items, dep.Items, pods.Items
	}
	return nil
}

func (e *env) printFindings(findings []Finding, all bool) error {
	if len(findings) == 0 {
		_, err := fmt.Fprintln(e.out(), "No problems found.")
		return err
	}
	w := tabwriter.NewWriter(e.out(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEVERITY\tOBJECT\tFIELD\tMESSAGE")
	for _, f := range findings {
		obj := strings.ToLower(f.Kind) + "/" + f.Name
		if all {
			obj = f.Namespace + "/" + obj
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Severity, obj, f.Field, f.Message)
	}
	return w.Flush()
}
