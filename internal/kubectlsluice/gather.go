package kubectlsluice

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rolloutview"
)

// primarySuffix names the stable Deployment Sluice keeps for a Rollout: <targetRef.name>-primary
// (controllers.PrimarySuffix; the plugin does not import the controllers).
const primarySuffix = "-primary"

// gatherView reads what the tree shows: the Rollout, its two Deployments and its events.
func gatherView(ctx context.Context, k *kube, ns, name string) (rolloutview.View, error) {
	ro, err := k.rollout(ctx, ns, name)
	if err != nil {
		return rolloutview.View{}, err
	}
	v := rolloutview.View{Rollout: ro}
	if v.Stable, err = workload(ctx, k, ns, ro.Spec.TargetRef.Name+primarySuffix); err != nil {
		return v, err
	}
	if v.Canary, err = workload(ctx, k, ns, ro.Spec.TargetRef.Name); err != nil {
		return v, err
	}
	v.Events, err = rolloutEvents(ctx, k, ro)
	return v, err
}

// workload is a Deployment's size and ready pods; nil when it does not exist.
func workload(ctx context.Context, k *kube, ns, name string) (*rolloutview.Workload, error) {
	d, err := k.deployment(ctx, ns, name)
	if d == nil || err != nil {
		return nil, err
	}
	return &rolloutview.Workload{Name: name, Replicas: ptr.Deref(d.Spec.Replicas, 1), Ready: d.Status.ReadyReplicas}, nil
}

// rolloutEvents lists the events about the Rollout (the core/v1 view of them, which the operator's
// events.k8s.io/v1 events also appear in).
func rolloutEvents(ctx context.Context, k *kube, ro *meshv1alpha1.Rollout) ([]rolloutview.Event, error) {
	var events corev1.EventList
	selector := fields.Set{"involvedObject.kind": "Rollout", "involvedObject.name": ro.Name}.String()
	if err := list(ctx, k.core, "events", ro.Namespace, &events, "fieldSelector", selector); err != nil {
		return nil, err
	}
	out := make([]rolloutview.Event, 0, len(events.Items))
	for _, e := range events.Items {
		if e.InvolvedObject.UID != "" && e.InvolvedObject.UID != ro.UID {
			continue // an event of an older Rollout of the same name
		}
		out = append(out, rolloutview.Event{Time: eventTime(&e), Type: e.Type, Reason: e.Reason, Message: e.Message, Count: eventCount(&e)})
	}
	return out, nil
}

// eventTime is when the event last happened, whichever API wrote it.
func eventTime(e *corev1.Event) (t time.Time) {
	times := []time.Time{e.EventTime.Time, e.LastTimestamp.Time, e.FirstTimestamp.Time}
	if e.Series != nil {
		times = append(times, e.Series.LastObservedTime.Time)
	}
	for _, c := range times {
		if c.After(t) {
			t = c
		}
	}
	if t.IsZero() {
		t = e.CreationTimestamp.Time
	}
	return t
}

func eventCount(e *corev1.Event) int32 {
	if e.Series != nil && e.Series.Count > e.Count {
		return e.Series.Count
	}
	return e.Count
}
