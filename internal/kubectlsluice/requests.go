package kubectlsluice

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/controllers/rollout"
)

// requestCommand is one imperative request the Rollout controller reads from an annotation
// (rollout.sluice.dev/<kind>, docs/rollouts.md).
type requestCommand struct {
	kind  rollout.RequestKind
	short string
}

var requestCommands = []requestCommand{
	{rollout.RequestPromote, "Finish the current step or pause now (--full: skip every remaining step)"},
	{rollout.RequestAbort, "Roll the running canary back: its weight returns to 0"},
	{rollout.RequestRetry, "Run a rolled-back revision again from step 0"},
	{rollout.RequestPause, "Hold the Rollout where it is until resume or promote"},
	{rollout.RequestResume, "Continue a Rollout paused with pause"},
}

func (e *env) requestCommand(r requestCommand) *cobra.Command {
	var full bool
	cmd := &cobra.Command{
		Use:     string(r.kind) + " NAME",
		Short:   r.short,
		Example: fmt.Sprintf("  kubectl sluice %s checkout -n shop", r.kind),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := r.kind
			if full {
				kind = rollout.RequestPromoteFull
			}
			return e.request(cmd.Context(), args[0], kind)
		},
	}
	if r.kind == rollout.RequestPromote {
		cmd.Flags().BoolVar(&full, "full", false, "Skip every remaining step and promote the canary now")
	}
	return cmd
}

// request sets the kind's annotation to a fresh value: the controller applies each new value once.
func (e *env) request(ctx context.Context, name string, kind rollout.RequestKind) error {
	k, err := e.kube()
	if err != nil {
		return err
	}
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	if _, err := k.rollout(ctx, ns, name); err != nil {
		return err
	}
	id := e.Clock.Now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{kind.Annotation(): id}}})
	if err != nil {
		return err
	}
	if err := k.mergePatchRollout(ctx, ns, name, patch); err != nil {
		return fmt.Errorf("annotating rollout %s/%s: %w", ns, name, err)
	}
	_, err = fmt.Fprintf(e.out(), "rollout.mesh.sluice.dev/%s: %s requested (%s=%s)\n", name, kind, kind.Annotation(), id)
	return err
}
