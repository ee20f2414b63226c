// Package rolloutview draws a Rollout as a tree: its steps with the current one marked, the stable
// and canary revisions with their ready pods and weights, the latest analysis evidence per metric and
// the recent events. It is pure (the clock and the colours are inputs), so its output is golden-tested.
package rolloutview

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// View is everything the tree shows, gathered from the cluster by the caller.
type View struct {
	Rollout *meshv1alpha1.Rollout
	// Stable and Canary are the Deployments behind the two revisions; nil when not found.
	Stable, Canary *Workload
	// Events are the Rollout's events, in any order; the newest are shown.
	Events []Event
	// Now is the time relative ages are computed from.
	Now time.Time
}

// Workload is a Deployment as the tree shows it.
type Workload struct {
	Name     string `json:"name"`
	Replicas int32  `json:"replicas"`
	Ready    int32  `json:"ready"`
}

// Event is one Kubernetes Event about the Rollout.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // Normal or Warning
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count,omitempty"`
}

// Options change how the tree is drawn.
type Options struct {
	// Color paints phases and verdicts with ANSI colours (on a terminal only).
	Color bool
	// MaxEvents bounds the events shown; 0 means 5.
	MaxEvents int
}

// Render writes the tree of v to w.
func Render(w io.Writer, v View, o Options) error {
	p := &printer{o: o, now: v.Now}
	p.render(v)
	_, err := io.WriteString(w, p.b.String())
	return err
}

// String is Render into a string.
func String(v View, o Options) string {
	var b strings.Builder
	_ = Render(&b, v, o) // a strings.Builder does not fail
	return b.String()
}

type printer struct {
	b   strings.Builder
	o   Options
	now time.Time
}

func (p *printer) line(prefix, format string, args ...any) {
	p.b.WriteString(prefix)
	fmt.Fprintf(&p.b, format, args...)
	p.b.WriteByte('\n')
}

func (p *printer) render(v View) {
	ro := v.Rollout
	st := ro.Status
	phase := string(st.Phase)
	if phase == "" {
		phase = "Unknown"
	}
	steps := canarySteps(ro)
	p.line("", "Rollout %s/%s  %s  canary weight %d%%%s", ro.Namespace, ro.Name, p.phase(phase), st.CanaryWeight, stepOf(st, len(steps)))
	if st.Message != "" {
		p.line("│ ", "%s", st.Message)
	}
	if st.PausedByUser {
		p.line("│ ", "%s", p.paint(yellow, "paused by a user: `kubectl sluice resume` or `promote` continues"))
	}
	if ro.Generation != st.ObservedGeneration && st.ObservedGeneration != 0 {
		p.line("│ ", "the operator has not acted on the latest spec yet (generation %d, observed %d)", ro.Generation, st.ObservedGeneration)
	}
	p.steps(ro, steps)
	p.revisions(v)
	p.analysis(ro)
	p.events(v.Events)
}

func canarySteps(ro *meshv1alpha1.Rollout) []meshv1alpha1.CanaryStep {
	if ro.Spec.Strategy.Canary == nil {
		return nil
	}
	return ro.Spec.Strategy.Canary.Steps
}

func stepOf(st meshv1alpha1.RolloutStatus, n int) string {
	switch {
	case st.CurrentStepIndex == nil || n == 0:
		return ""
	case int(*st.CurrentStepIndex) >= n:
		return fmt.Sprintf("  all %d steps done", n)
	}
	return fmt.Sprintf("  step %d/%d", *st.CurrentStepIndex+1, n)
}

func (p *printer) steps(ro *meshv1alpha1.Rollout, steps []meshv1alpha1.CanaryStep) {
	st := ro.Status
	p.line("├─ ", "Steps")
	current := -1
	if st.CurrentStepIndex != nil {
		current = int(*st.CurrentStepIndex)
	}
	running := st.Phase == meshv1alpha1.RolloutProgressing || st.Phase == meshv1alpha1.RolloutPaused
	for i, s := range steps {
		branch := "│  ├─ "
		if i == len(steps)-1 {
			branch = "│  └─ "
		}
		mark := "  "
		switch {
		case i < current || (i == current && !running && st.Phase == meshv1alpha1.RolloutPromoting):
			mark = p.paint(green, "✓ ")
		case i == current && running:
			mark = p.paint(cyan, "▶ ")
		case i == current && (st.Phase == meshv1alpha1.RolloutRolledBack || st.Phase == meshv1alpha1.RolloutFailed):
			mark = p.paint(red, "✗ ")
		}
		p.line(branch, "%s%d  %s%s", mark, i, describeStep(s), p.stepDetail(ro, s, i == current && running))
	}
}

func describeStep(s meshv1alpha1.CanaryStep) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d%%", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		return "pause " + s.Pause.Duration.Duration.String()
	case s.Pause != nil:
		return "pause until promoted"
	}
	return "?"
}

// stepDetail says where the current step stands: the weight waiting for the proxies, or the time
// left in a timed pause.
func (p *printer) stepDetail(ro *meshv1alpha1.Rollout, s meshv1alpha1.CanaryStep, current bool) string {
	if !current {
		return ""
	}
	st := ro.Status
	switch {
	case s.SetWeight != nil && st.WeightProgrammedAt == nil:
		return "  (waiting for the proxies to apply it)"
	case s.SetWeight != nil:
		return "  (applied " + p.ago(st.WeightProgrammedAt.Time) + ")"
	case s.Pause != nil && s.Pause.Duration != nil && st.StepStartedAt != nil:
		left := st.StepStartedAt.Add(s.Pause.Duration.Duration).Sub(p.now)
		if left < 0 {
			left = 0
		}
		return "  (" + short(left) + " left)"
	case s.Pause != nil && s.Pause.Duration == nil:
		return "  (`kubectl sluice promote` continues)"
	}
	return ""
}

func (p *printer) revisions(v View) {
	st := v.Rollout.Status
	p.line("├─ ", "Revisions")
	stableWeight := 100 - st.CanaryWeight
	p.line("│  ├─ ", "stable  %s  %d%%  %s", orDash(st.StableRevision), stableWeight, pods(v.Stable))
	p.line("│  └─ ", "canary  %s  %d%%  %s", orDash(canaryRevision(st)), st.CanaryWeight, pods(v.Canary))
}

// canaryRevision is the canary's revision while one is in play (a run, its promotion or its
// rollback); once promoted, the canary and stable revisions are the same and it says nothing new.
func canaryRevision(st meshv1alpha1.RolloutStatus) string {
	if st.CanaryRevision == st.StableRevision {
		return ""
	}
	return st.CanaryRevision
}

func pods(w *Workload) string {
	if w == nil {
		return "(no Deployment)"
	}
	return fmt.Sprintf("%s %d/%d ready", w.Name, w.Ready, w.Replicas)
}

func (p *printer) analysis(ro *meshv1alpha1.Rollout) {
	spec := ro.Spec.Analysis
	if spec == nil {
		p.line("├─ ", "Analysis  none: steps advance on their pauses alone")
		return
	}
	a := ro.Status.Analysis
	if a == nil {
		a = &meshv1alpha1.RolloutAnalysisStatus{}
	}
	interval := "1m0s"
	if spec.Interval != nil {
		interval = spec.Interval.Duration.String()
	}
	head := fmt.Sprintf("Analysis  every %s, failed %d of %d allowed, passed %d, inconclusive %d",
		interval, a.FailedChecks, spec.FailureLimit, a.PassedChecks, a.InconclusiveChecks)
	if a.NextCheckAt != nil && isRunning(ro.Status.Phase) {
		head += ", next check " + p.until(a.NextCheckAt.Time)
	}
	p.line("├─ ", "%s", head)
	evidence := map[string]meshv1alpha1.MetricEvidence{}
	for _, m := range a.Metrics {
		evidence[m.Name] = m
	}
	for i, m := range spec.Metrics {
		branch := "│  ├─ "
		if i == len(spec.Metrics)-1 {
			branch = "│  └─ "
		}
		e := evidence[m.Name]
		threshold := e.Threshold
		if threshold == "" {
			threshold = thresholdOf(m.ThresholdRange)
		}
		if len(e.Results) == 0 {
			p.line(branch, "%s  no result yet  (%s)", m.Name, threshold)
			continue
		}
		r := e.Results[len(e.Results)-1]
		p.line(branch, "%s  %s  (%s)  %s  %s%s", m.Name, value(r.Value), threshold, p.verdict(r), p.ago(r.Time.Time), resultDetail(r))
	}
}

func isRunning(ph meshv1alpha1.RolloutPhase) bool {
	return ph == meshv1alpha1.RolloutProgressing || ph == meshv1alpha1.RolloutPaused
}

func thresholdOf(t meshv1alpha1.ThresholdRange) string {
	var parts []string
	if t.Min != nil {
		parts = append(parts, "min "+strconv.FormatFloat(*t.Min, 'g', -1, 64))
	}
	if t.Max != nil {
		parts = append(parts, "max "+strconv.FormatFloat(*t.Max, 'g', -1, 64))
	}
	return strings.Join(parts, ", ")
}

// value prints a number with at most four significant digits; anything else as it is.
func value(v string) string {
	if v == "" {
		return "-"
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return strconv.FormatFloat(f, 'g', 4, 64)
	}
	return v
}

func resultDetail(r meshv1alpha1.MetricEvidenceResult) string {
	var parts []string
	if r.Reason != "" {
		parts = append(parts, r.Reason)
	}
	if r.Requests != nil {
		parts = append(parts, fmt.Sprintf("%d requests", *r.Requests))
	}
	if r.Error != "" {
		parts = append(parts, "error: "+r.Error)
	}
	if len(parts) == 0 {
		return ""
	}
	return "  " + strings.Join(parts, ", ")
}

func (p *printer) verdict(r meshv1alpha1.MetricEvidenceResult) string {
	switch r.Verdict {
	case "Pass":
		return p.paint(green, r.Verdict)
	case "Fail":
		return p.paint(red, r.Verdict)
	}
	return p.paint(yellow, r.Verdict)
}

func (p *printer) events(events []Event) {
	limit := p.o.MaxEvents
	if limit <= 0 {
		limit = 5
	}
	recent := newest(events, limit)
	if len(recent) == 0 {
		p.line("└─ ", "Events  none")
		return
	}
	p.line("└─ ", "Events")
	for i, e := range recent {
		branch := "   ├─ "
		if i == len(recent)-1 {
			branch = "   └─ "
		}
		count := ""
		if e.Count > 1 {
			count = fmt.Sprintf(" (x%d)", e.Count)
		}
		reason := e.Reason
		if e.Type == "Warning" {
			reason = p.paint(red, reason)
		}
		p.line(branch, "%s  %s  %s%s", p.ago(e.Time), reason, e.Message, count)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
