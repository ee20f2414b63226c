package crd

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// lookup reads related objects: Deployments, Services and pods from the manager's cache (the
// controllers watch them already), Sluice's kinds and issuers from the API server, so that an
// object created a moment ago is seen.
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
