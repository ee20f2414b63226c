package manager

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/sluice-mesh/sluice/webhooks/injection"
)

// addInjection serves the pod injection webhook, unless the webhook server is off (WebhookPort 0).
// Options built in code without injection settings get the defaults.
func addInjection(mgr ctrl.Manager, o Options) error {
	if o.WebhookPort == 0 {
		return nil
	}
	cfg := o.Injection
	if cfg == (injection.Config{}) {
		cfg = injection.DefaultConfig()
	}
	if err := injection.Register(mgr, cfg); err != nil {
		return fmt.Errorf("registering the pod injection webhook: %w", err)
	}
	return nil
}
