package kubectlsluice

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/revision"
)

func (e *env) statusCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait for a Rollout's release to end; the exit code says how (for CI pipelines)",
		Long: "status waits until the Rollout has released the Deployment's current template, printing each change\n" +
			"of phase, step and weight, and exits:\n" +
			"  0  promoted\n" +
			"  2  rolled back by its analysis (AnalysisFailed, AnalysisErrors)\n" +
			"  3  aborted by a user (AbortedByUser)\n" +
			"  4  failed: the Rollout cannot run (InvalidSpec, TargetNotFound)\n" +
			"  5  --timeout passed first\n" +
			"  1  any other error (not found, no access)",
		Example: "  kubectl apply -f deployment.yaml && kubectl sluice status checkout -n shop --timeout 30m",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.waitStatus(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "How long to wait, such as 30m; 0 waits as long as it takes")
	return cmd
}

// outcome is where a release stands as status sees it.
type outcome struct {
	done bool
	code int
	line string // phase, step, weight and message
}

func (e *env) waitStatus(ctx context.Context, name string, timeout time.Duration) error {
	k, err := e.kube()
	if err != nil {
		return err
	}
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := e.Clock.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C()
	}
	tick := e.Clock.NewTicker(e.Poll)
	defer tick.Stop()
	last := ""
	for {
		ro, err := k.rollout(ctx, ns, name)
		if err != nil {
			return err
		}
		current, err := targetRevision(ctx, k, ro)
		if err != nil {
			return err
		}
		o := judge(ro, current)
		if o.line != last {
			if _, err := fmt.Fprintln(e.out(), o.line); err != nil {
				return err
			}
			last = o.line
		}
		if o.done {
			if o.code == ExitPromoted {
				return nil
			}
			return exitf(o.code, "rollout %s/%s: %s", ns, name, o.line)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return exitf(ExitTimeout, "rollout %s/%s: still %s after %s", ns, name, phaseOf(ro), timeout)
		case <-tick.C():
		}
	}
}

// targetRevision is the revision of the target Deployment's current template: the release status
// waits for. "" while the Deployment controller has not made its ReplicaSet yet.
func targetRevision(ctx context.Context, k *kube, ro *meshv1alpha1.Rollout) (string, error) {
	d, err := k.deployment(ctx, ro.Namespace, ro.Spec.TargetRef.Name)
	if d == nil || err != nil {
		return "", err
	}
	var rss appsv1.ReplicaSetList
	if err := list(ctx, k.apps, "replicasets", ro.Namespace, &rss); err != nil {
		return "", err
	}
	return revision.Current(d, rss.Items), nil
}

// judge tells whether the Rollout has finished releasing revision current, and how. A Promoted or
// RolledBack phase about another revision is an earlier release: the current one has not started.
func judge(ro *meshv1alpha1.Rollout, current string) outcome {
	st := ro.Status
	o := outcome{line: describe(ro)}
	if st.ObservedGeneration < ro.Generation {
		return o // the operator has not seen the latest spec
	}
	switch st.Phase {
	case meshv1alpha1.RolloutFailed:
		return outcome{done: true, code: ExitFailed, line: o.line}
	case meshv1alpha1.RolloutPromoted:
		if current != "" && st.StableRevision == current {
			return outcome{done: true, code: ExitPromoted, line: o.line}
		}
	case meshv1alpha1.RolloutRolledBack:
		if current != "" && st.CanaryRevision == current {
			code := ExitRolledBack
			if st.AbortReason == "AbortedByUser" {
				code = ExitAborted
			}
			return outcome{done: true, code: code, line: o.line}
		}
	}
	return o
}

func phaseOf(ro *meshv1alpha1.Rollout) string {
	if ro.Status.Phase == "" {
		return "Pending"
	}
	return string(ro.Status.Phase)
}

// describe is one line: phase (and reason), step, weight, message.
func describe(ro *meshv1alpha1.Rollout) string {
	st := ro.Status
	s := phaseOf(ro)
	if st.AbortReason != "" && st.Phase == meshv1alpha1.RolloutRolledBack {
		s += " (" + st.AbortReason + ")"
	}
	if st.FailureReason != "" && st.Phase == meshv1alpha1.RolloutFailed {
		s += " (" + st.FailureReason + ")"
	}
	if n := len(canarySteps(ro)); st.CurrentStepIndex != nil && n > 0 && int(*st.CurrentStepIndex) < n {
		s += fmt.Sprintf("  step %d/%d", *st.CurrentStepIndex+1, n)
	}
	s += fmt.Sprintf("  canary %d%%", st.CanaryWeight)
	if st.Message != "" {
		s += "  " + st.Message
	}
	return s
}

func canarySteps(ro *meshv1alpha1.Rollout) []meshv1alpha1.CanaryStep {
	if ro.Spec.Strategy.Canary == nil {
		return nil
	}
	return ro.Spec.Strategy.Canary.Steps
}
