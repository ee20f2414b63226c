// Package webhooks holds the admission webhooks (validation with clear errors, and sidecar
// injection). They arrive with the webhooks issue.
package webhooks
