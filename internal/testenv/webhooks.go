package testenv

import (
	"sync"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/manager"
)

// ServeWebhooks points the manager's webhook server at the address and certificate the installed
// webhook configurations call (Options.WebhookConfigs); it panics when none were installed.
func (e *Env) ServeWebhooks(o *manager.Options) {
	if e.Webhooks == nil {
		panic("testenv: no webhook configurations were installed (Options.WebhookConfigs)")
	}
	o.WebhookHost = e.Webhooks.LocalServingHost
	o.WebhookPort = e.Webhooks.LocalServingPort
	o.WebhookCertDir = e.Webhooks.LocalServingCertDir
}

// Warnings collects the warnings the API server returns (admission warnings among them).
type Warnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// Take returns the warnings received since the last Take and forgets them.
func (w *Warnings) Take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// WarningClient is a client like Env.Client whose warnings are collected in the returned
// Warnings instead of logged.
func (e *Env) WarningClient() (client.Client, *Warnings, error) {
	w := &Warnings{}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	return c, w, err
}
