// Package revision tells a Deployment's current revision, as the Rollout controller and the kubectl
// plugin both need it: the pod-template-hash of the ReplicaSet of its current template. It is pure
// (the caller lists the ReplicaSets), so the plugin does not link controller-runtime.
package revision

import (
	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/xds/translate"
)

// Current finds, among replicaSets, the one the Deployment owns whose template is the
// Deployment's (apart from the hash label the controller adds) and returns its pod-template-hash;
// "" if there is none yet. Sluice does not compute the hash itself: the controller's value depends
// on the cluster's version of the API types.
func Current(d *appsv1.Deployment, replicaSets []appsv1.ReplicaSet) string {
	for i := range replicaSets {
		rs := &replicaSets[i]
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		hash := rs.Labels[translate.RevisionLabel]
		tmpl := rs.Spec.Template.DeepCopy()
		delete(tmpl.Labels, translate.RevisionLabel)
		if hash != "" && apiequality.Semantic.DeepEqual(*tmpl, d.Spec.Template) {
			return hash
		}
	}
	return ""
}
