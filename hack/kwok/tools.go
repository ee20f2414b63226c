//go:build tools

// Package tools pins kwok's command for hack/kwok.sh; it is never built.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
