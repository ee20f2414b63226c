package crd

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// lookup reads related objects. What a refusal depends on (the Deployment and Service a Rollout
// or TrafficPolicy names, Sluice's kinds, issuers) is read from the API server, so that an object
// created or changed a moment ago is seen as it is; what only warnings depend on and can be many
// (the pods a subset is compared with, the Services of a ZeroTrust's rules) from the manager's
// cache, which the controllers keep anyway.
type lookup struct {
	cached client.Reader
	live   client.Reader
}

// getOptional reads key into obj; a missing object is (false, nil).
func getOptional(ctx context.Context, r client.Reader, key client.ObjectKey, obj client.Object) (bool, error) {
	err := r.Get(ctx, key, obj)
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, err
}
