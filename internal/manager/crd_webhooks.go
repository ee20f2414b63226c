package manager

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/sluice-mesh/sluice/webhooks/crd"
)

// addCRDWebhooks registers the validating and defaulting webhooks of Sluice's kinds, unless the
// webhook server is off (WebhookPort 0).
func addCRDWebhooks(mgr ctrl.Manager, o Options) error {
	if o.WebhookPort == 0 {
		return nil
	}
	namespace := o.Namespace
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if err := crd.Register(mgr, namespace); err != nil {
		return fmt.Errorf("registering the webhooks of Sluice's kinds: %w", err)
	}
	return nil
}
