package controllers

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/internal/revision"
)

// The workload model (docs/rollouts.md): the user's Deployment holds the desired template and runs
// the canary; Sluice keeps <target>-primary, a copy of the last promoted template, as stable.

// PrimarySuffix names the stable Deployment: <spec.targetRef.name>-primary.
const PrimarySuffix = "-primary"

// Labels and annotations Sluice puts on the Deployments it manages or scales.
const (
	// LabelRollout names the Rollout that manages a primary Deployment.
	LabelRollout = "rollout.sluice.dev/name"
	// AnnotationCanaryReplicas keeps the replicas of a canary Deployment Sluice scaled to zero, so
	// the next run scales it back to the same size.
	AnnotationCanaryReplicas = "rollout.sluice.dev/replicas"
)

func primaryName(ro *meshv1alpha1.Rollout) string { return ro.Spec.TargetRef.Name + PrimarySuffix }

// observed is one Deployment as the reconciler saw it.
type observed struct {
	deploy *appsv1.Deployment // nil when it does not exist
	// revisionKnown is false while the Deployment controller has not yet made the ReplicaSet of
	// the current template: its revision cannot be told yet.
	revisionKnown bool
	workload      rollout.Workload
}

// observeDeployment reads a Deployment and its current revision: the pod-template-hash the
// Deployment controller gave the ReplicaSet of its current template (the revision's pods carry
// it, which is what xds/translate selects them by).
func observeDeployment(ctx context.Context, c client.Reader, namespace, name string) (observed, error) {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
		if apierrors.IsNotFound(err) {
			return observed{revisionKnown: true}, nil
		}
		return observed{}, err
	}
	o := observed{deploy: d}
	var rss appsv1.ReplicaSetList
	if err := c.List(ctx, &rss, client.InNamespace(d.Namespace)); err != nil {
		return observed{}, fmt.Errorf("listing ReplicaSets: %w", err)
	}
	rev := revision.Current(d, rss.Items)
	o.revisionKnown = rev != ""
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	o.workload = rollout.Workload{Revision: rev, Replicas: replicas, Ready: deploymentComplete(d, replicas)}
	return o, nil
}

// deploymentComplete is true when every replica runs the current template and is available.
func deploymentComplete(d *appsv1.Deployment, replicas int32) bool {
	s := d.Status
	return replicas > 0 && s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == replicas &&
		s.AvailableReplicas == replicas && s.Replicas == replicas
}

// scaleCanary scales the user's Deployment down to zero (remembering its size) or back up.
func scaleCanary(ctx context.Context, c client.Client, canary *appsv1.Deployment, up bool, stable *appsv1.Deployment) error {
	before := canary.DeepCopy()
	current := ptr.Deref(canary.Spec.Replicas, 1)
	if up {
		want := int32(1)
		if stable != nil {
			want = max(ptr.Deref(stable.Spec.Replicas, 1), 1)
		}
		if n, err := strconv.ParseInt(canary.Annotations[AnnotationCanaryReplicas], 10, 32); err == nil && n > 0 {
			want = int32(n)
		}
		if current > 0 {
			return nil
		}
		canary.Spec.Replicas = ptr.To(want)
		delete(canary.Annotations, AnnotationCanaryReplicas)
	} else {
		if current == 0 {
			return nil
		}
		if canary.Annotations == nil {
			canary.Annotations = map[string]string{}
		}
		canary.Annotations[AnnotationCanaryReplicas] = strconv.Itoa(int(current))
		canary.Spec.Replicas = ptr.To(int32(0))
	}
	return c.Patch(ctx, canary, client.MergeFrom(before))
}

// copyTemplateToStable creates or updates <target>-primary with the canary's template, selector
// and update strategy, at the canary's size. The template is copied verbatim, so the Deployment
// controller gives both the same pod-template-hash.
func copyTemplateToStable(ctx context.Context, c client.Client, ro *meshv1alpha1.Rollout, canary, stable *appsv1.Deployment) error {
	replicas := ptr.Deref(canary.Spec.Replicas, 1)
	if n, err := strconv.ParseInt(canary.Annotations[AnnotationCanaryReplicas], 10, 32); err == nil && n > 0 {
		replicas = int32(n)
	}
	if stable == nil {
		stable = &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: primaryName(ro)}}
	}
	before := stable.DeepCopy()
	if stable.Labels == nil {
		stable.Labels = map[string]string{}
	}
	stable.Labels[LabelRollout] = ro.Name
	stable.Labels["app.kubernetes.io/managed-by"] = "sluice"
	stable.Spec.Selector = canary.Spec.Selector.DeepCopy()
	stable.Spec.Template = *canary.Spec.Template.DeepCopy()
	stable.Spec.Strategy = *canary.Spec.Strategy.DeepCopy()
	stable.Spec.MinReadySeconds = canary.Spec.MinReadySeconds
	stable.Spec.ProgressDeadlineSeconds = canary.Spec.ProgressDeadlineSeconds
	stable.Spec.RevisionHistoryLimit = canary.Spec.RevisionHistoryLimit
	if replicas > 0 {
		stable.Spec.Replicas = ptr.To(replicas)
	}
	if err := controllerutil.SetControllerReference(ro, stable, c.Scheme()); err != nil {
		return err
	}
	if stable.ResourceVersion == "" {
		return c.Create(ctx, stable)
	}
	if apiequality.Semantic.DeepEqual(before, stable) {
		return nil
	}
	return c.Patch(ctx, stable, client.MergeFrom(before))
}
