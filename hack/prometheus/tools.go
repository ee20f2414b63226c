//go:build tools

// Package prometheus only records the command this module builds.
package prometheus

import _ "github.com/prometheus/prometheus/cmd/prometheus"
