package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/sandbox"
	"github.com/sluice-mesh/sluice/internal/testcluster"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// The demo's workload: the greeter Service in namespace demo.
const (
	demoNamespace = "demo"
	demoName      = "greeter"
	demoPort      = 8080
	demoTarget    = "greeter.demo.svc.cluster.local:8080"
	// loadgenName is the service account (and pod) whose identity the demo's users present.
	loadgenName = "loadgen"
	callsPerSec = 50
	// analysisInterval is short so the story takes a minute or two; a real one is a minute or more.
	analysisInterval = 5 * time.Second
)

// runDemo starts the sandbox, tells the story, stops the sandbox, and returns the exit code: 0
// only if the healthy canary was promoted and the bad one rolled back.
func runDemo(stateDir, demoApp string) int {
	u := newUI()
	if err := enter(stateDir); err != nil {
		u.bad("%v", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	u.title("Starting a local sandbox: real Kubernetes, Prometheus and the Sluice operator")
	sb, err := sandbox.Start(ctx, sandbox.Options{StateDir: stateDir, DemoApp: demoApp, Log: os.Stdout,
		ClientBootstrap: usersBootstrap(stateDir)})
	if err != nil {
		u.bad("the sandbox did not start: %v", err)
		return 1
	}
	defer func() {
		u.title("Tearing the sandbox down")
		sb.Stop()
		u.say("done")
	}()
	d := &demo{ui: u, c: sb.Client, sb: sb, stateDir: stateDir}
	return d.story(ctx)
}

type demo struct {
	ui       *ui
	c        client.Client
	sb       *sandbox.Sandbox
	stateDir string
	users    *load
}

// loadgenFiles is where the users' identity is written for their gRPC bootstrap.
func loadgenFiles(stateDir string) testmesh.CertificateFiles {
	return sandbox.IdentityFiles(filepath.Join(stateDir, loadgenName))
}

// startUsers writes the users' identity (issued for the loadgen pod's service account; written
// again on renewal until the sandbox stops) and starts calling.
func (d *demo) startUsers(ctx context.Context) error {
	if _, _, err := d.sb.MountIdentity(ctx, demoNamespace, loadgenName, filepath.Join(d.stateDir, loadgenName)); err != nil {
		return err
	}
	var err error
	d.users, err = startLoad(ctx, demoTarget, callsPerSec)
	return err
}

func (d *demo) story(ctx context.Context) int {
	u := d.ui
	u.title("greeter v1: 3 pods behind a Service, with a ZeroTrust (STRICT mTLS), a TrafficPolicy and a Rollout")
	if err := d.deploy(ctx); err != nil {
		u.bad("%v", err)
		return 1
	}
	ro, err := d.follow(ctx, "v1 to become stable", time.Minute, func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPromoted
	})
	if err != nil {
		u.bad("%v", err)
		return 1
	}
	v1 := ro.Status.StableRevision
	u.ok("v1 (revision %s) is stable; greeter-primary serves it", v1)
	if err := d.startUsers(ctx); err != nil {
		u.bad("starting the users: %v", err)
		return 1
	}
	u.say("users call xds:///%s, %d calls a second, through gRPC's own xDS client, over mutual TLS as %s",
		demoTarget, callsPerSec, zerotrust.SPIFFEID(zerotrust.DefaultTrustDomain, demoNamespace, loadgenName))

	u.title("Release v2 (healthy): the canary steps 10 → 30 → 60 % while Prometheus says it is healthy")
	if err := d.release(ctx, "v2", 0); err != nil {
		u.bad("%v", err)
		return 1
	}
	ro, err = d.follow(ctx, "v2 to be promoted", 3*time.Minute, func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPromoted && ro.Status.StableRevision != v1 ||
			ro.Status.Phase == meshv1alpha1.RolloutRolledBack
	})
	promoted := err == nil && ro.Status.Phase == meshv1alpha1.RolloutPromoted
	if promoted {
		u.ok("v2 promoted: it is stable and serves all the traffic")
	} else {
		u.bad("v2 was not promoted: %v %s", err, phaseOf(ro))
	}
	d.evidence(ro)
	v2 := ""
	if ro != nil {
		v2 = ro.Status.StableRevision
	}

	u.title("Release v3 (30 % of its calls fail): the analysis fails and the canary is rolled back")
	if err := d.release(ctx, "v3", 30); err != nil {
		u.bad("%v", err)
		return 1
	}
	ro, err = d.follow(ctx, "v3 to be rolled back", 3*time.Minute, func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutRolledBack ||
			ro.Status.Phase == meshv1alpha1.RolloutPromoted && ro.Status.StableRevision != v2
	})
	rolledBack := err == nil && ro.Status.Phase == meshv1alpha1.RolloutRolledBack
	if rolledBack {
		u.ok("v3 rolled back (%s): every call goes to v2 again", ro.Status.AbortReason)
	} else {
		u.bad("v3 was not rolled back: %v %s", err, phaseOf(ro))
	}
	d.evidence(ro)
	time.Sleep(2 * time.Second) // a last second of traffic on stable, for the summary
	return d.summary(promoted, rolledBack)
}

// deploy creates what a team would: the Deployment and Service, a TrafficPolicy and a Rollout.
func (d *demo) deploy(ctx context.Context) error {
	labels := map[string]string{"app": demoName}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}},
		// Every workload of the namespace gets a SPIFFE identity from the sandbox's CA, and takes
		// only mutual TLS.
		&meshv1alpha1.ZeroTrust{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "demo"},
			Spec: meshv1alpha1.ZeroTrustSpec{
				MTLS: meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict},
				Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{
					Group: "cert-manager.io", Kind: "ClusterIssuer", Name: sandbox.CAIssuer}},
			},
		},
		// The demo's users run in the sandbox process; this pod gives them their identity.
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: loadgenName, Labels: map[string]string{"app": loadgenName}},
			Spec: corev1.PodSpec{ServiceAccountName: loadgenName, Containers: []corev1.Container{{
				Name: "users", Image: sandbox.LoadgenImage}}},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoName},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						ServiceAccountName: demoName,
						// Ready once the app listens, as a readiness probe would say (see internal/testcluster).
						ReadinessGates: []corev1.PodReadinessGate{{ConditionType: testcluster.ServingGate}},
						Containers: []corev1.Container{{
							Name: "greeter", Image: sandbox.DemoImage + ":1.0",
							Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: demoPort}},
							Env:   []corev1.EnvVar{{Name: "VERSION", Value: "v1"}, {Name: "ERROR_PERCENT", Value: "0"}},
						}},
					},
				},
			},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoName},
			Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{
				Name: "grpc", Port: demoPort, TargetPort: intstr.FromInt32(demoPort)}}},
		},
		&meshv1alpha1.TrafficPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoName},
			Spec: meshv1alpha1.TrafficPolicySpec{
				TargetRef: meshv1alpha1.ServiceRef{Kind: "Service", Name: demoName},
				Timeout:   &metav1.Duration{Duration: 2 * time.Second},
			},
		},
		&meshv1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoName},
			Spec: meshv1alpha1.RolloutSpec{
				TargetRef: meshv1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: demoName},
				Service:   meshv1alpha1.ServicePort{Name: demoName, Port: demoPort},
				Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{Steps: []meshv1alpha1.CanaryStep{
					{SetWeight: ptr.To[int32](10)}, {SetWeight: ptr.To[int32](30)}, {SetWeight: ptr.To[int32](60)},
				}}},
				Analysis: &meshv1alpha1.Analysis{
					Interval:     &metav1.Duration{Duration: analysisInterval},
					FailureLimit: 1,
					MinRequests:  ptr.To[int32](10),
					Metrics: []meshv1alpha1.AnalysisMetric{
						{Name: "success-rate", Template: meshv1alpha1.MetricRequestSuccessRate,
							ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr.To(99.0)}},
						{Name: "latency-p99", Template: meshv1alpha1.MetricRequestDuration,
							ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(500.0)}},
					},
				},
			},
		},
	}
	for _, o := range objs {
		if err := d.c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	d.ui.say("created ZeroTrust, Deployment, Service, TrafficPolicy and Rollout %s/%s", demoNamespace, demoName)
	return nil
}

// release edits the Deployment's template as a team would for a new version.
func (d *demo) release(ctx context.Context, version string, errorPercent int) error {
	dep := &appsv1.Deployment{}
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: demoName}, dep); err != nil {
		return err
	}
	patch := client.MergeFrom(dep.DeepCopy())
	dep.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "VERSION", Value: version}, {Name: "ERROR_PERCENT", Value: fmt.Sprint(errorPercent)}}
	if err := d.c.Patch(ctx, dep, patch); err != nil {
		return err
	}
	d.ui.say("kubectl edit deployment greeter: VERSION=%s, ERROR_PERCENT=%d", version, errorPercent)
	return nil
}

// follow prints the Rollout's progress and the users' traffic every second until done holds.
func (d *demo) follow(ctx context.Context, what string, timeout time.Duration, done func(*meshv1alpha1.Rollout) bool) (*meshv1alpha1.Rollout, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ro := &meshv1alpha1.Rollout{}
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: demoName}, ro); err != nil {
			return nil, err
		}
		line := d.progress(ro)
		if d.users != nil {
			line += "  " + d.ui.traffic(d.users.take())
		}
		if line != last && ro.Status.Phase != "" {
			d.ui.say("%s", line)
			last = line
		}
		if done(ro) {
			return ro, nil
		}
		if time.Now().After(deadline) {
			return ro, fmt.Errorf("waited %s for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ro, ctx.Err()
		case <-tick.C:
		}
	}
}

// progress is the Rollout's phase, step and weight, the phase in colour.
func (d *demo) progress(ro *meshv1alpha1.Rollout) string { return describe(ro, d.ui.phase) }

func phaseOf(ro *meshv1alpha1.Rollout) string {
	return describe(ro, func(s string) string { return s })
}

// describe is the Rollout's phase (through paint), step and weight.
func describe(ro *meshv1alpha1.Rollout, paint func(string) string) string {
	if ro == nil {
		return ""
	}
	step := ""
	if i := ro.Status.CurrentStepIndex; i != nil && ro.Spec.Strategy.Canary != nil {
		step = fmt.Sprintf(" step %d/%d", min(int(*i)+1, len(ro.Spec.Strategy.Canary.Steps)), len(ro.Spec.Strategy.Canary.Steps))
	}
	return fmt.Sprintf("%s%s canary %3d%%", paint(fmt.Sprintf("%-11s", ro.Status.Phase)), step, ro.Status.CanaryWeight)
}

// evidence prints the last analysis results the Rollout keeps in its status.
func (d *demo) evidence(ro *meshv1alpha1.Rollout) {
	if ro == nil || ro.Status.Analysis == nil {
		return
	}
	a := ro.Status.Analysis
	d.ui.say("analysis: %d checks passed, %d failed, %d inconclusive; evidence in status:", a.PassedChecks, a.FailedChecks, a.InconclusiveChecks)
	for _, m := range a.Metrics {
		if len(m.Results) == 0 {
			continue
		}
		r := m.Results[len(m.Results)-1]
		verdict := r.Verdict
		switch r.Verdict {
		case "Pass":
			verdict = d.ui.paint(green, verdict)
		case "Fail":
			verdict = d.ui.paint(red, verdict)
		}
		value := r.Value
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			value = strconv.FormatFloat(v, 'g', 4, 64)
		}
		d.ui.say("  %-13s %s  value %s, threshold %s", m.Name, verdict, value, m.Threshold)
	}
	if ro.Status.Message != "" {
		d.ui.say("  %s", ro.Status.Message)
	}
}

func (d *demo) summary(promoted, rolledBack bool) int {
	u := d.ui
	u.title("Summary")
	mark := func(ok bool, what string) {
		if ok {
			u.ok("%s", what)
		} else {
			u.bad("%s", what)
		}
	}
	mark(promoted, "a healthy canary (v2) was promoted step by step")
	mark(rolledBack, "a bad canary (v3, 30 % errors) was rolled back by the analysis")
	if d.users != nil {
		totals, lost := d.users.totals()
		u.say("users' calls over the whole story: %s", u.traffic(totals))
		if lost > 0 {
			u.say("%d calls failed without reaching a version (timeouts, no endpoint)", lost)
		}
		for who, n := range d.users.seenAs() {
			if who == "" {
				who = "plain text (no client certificate)"
			}
			u.say("the servers saw %d answered calls from %s", n, who)
		}
	}
	if promoted && rolledBack {
		return 0
	}
	return 1
}
