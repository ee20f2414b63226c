package kubectlsluice

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/internal/rolloutview"
)

func (e *env) getCommand() *cobra.Command {
	var (
		out   outputFlag
		watch bool
	)
	cmd := &cobra.Command{
		Use:   "get rollout NAME",
		Short: "Draw a Rollout: steps, revisions with ready pods, analysis evidence, recent events",
		Example: "  kubectl sluice get rollout checkout -n shop\n" +
			"  kubectl sluice get rollout checkout -n shop --watch\n" +
			"  kubectl sluice get rollout checkout -n shop -o yaml",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !isRolloutResource(args[0]) {
				return fmt.Errorf("kubectl sluice get shows rollouts only: `kubectl sluice get rollout NAME` (got %q)", args[0])
			}
			if err := out.validate(); err != nil {
				return err
			}
			if watch && out.structured() {
				return fmt.Errorf("--watch draws the tree; leave out -o %s", out.format)
			}
			return e.getRollout(cmd.Context(), args[1], out, watch)
		},
	}
	out.add(cmd)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "Keep drawing the Rollout as it changes (redrawn in place on a terminal)")
	return cmd
}

func isRolloutResource(s string) bool {
	switch strings.ToLower(s) {
	case "rollout", "rollouts", "sro", "rollout.mesh.sluice.dev", "rollouts.mesh.sluice.dev":
		return true
	}
	return false
}

func (e *env) getRollout(ctx context.Context, name string, out outputFlag, watch bool) error {
	k, err := e.kube()
	if err != nil {
		return err
	}
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	if out.structured() {
		ro, err := k.rollout(ctx, ns, name)
		if err != nil {
			return err
		}
		return out.print(e.out(), withoutManagedFields(ro))
	}
	draw := func() (string, error) {
		v, err := gatherView(ctx, k, ns, name)
		if err != nil {
			return "", err
		}
		v.Now = e.Clock.Now()
		return rolloutview.String(v, rolloutview.Options{Color: e.color()}), nil
	}
	text, err := draw()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprint(e.out(), text); err != nil || !watch {
		return err
	}
	return e.redraw(ctx, text, draw)
}

// redraw draws again every poll until ctx ends: in place on a terminal (the ages move on), and
// otherwise only when the drawing changed, after a blank line.
func (e *env) redraw(ctx context.Context, last string, draw func() (string, error)) error {
	tick := e.Clock.NewTicker(e.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		}
		text, err := draw()
		if ctx.Err() != nil {
			return nil // interrupted
		}
		if err != nil {
			return err
		}
		switch {
		case e.terminal():
			// Up to the first line of the last drawing, then clear to the end of the screen.
			_, err = fmt.Fprintf(e.out(), "\x1b[%dA\r\x1b[J%s", strings.Count(last, "\n"), text)
		case text != last:
			_, err = fmt.Fprintf(e.out(), "\n%s", text)
		}
		if err != nil {
			return err
		}
		last = text
	}
}
