package server

import (
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/go-logr/logr"
)

// cacheLogger adapts l for go-control-plane, whose caches log at Info for every watch: its Debug
// and Info go to verbosity 2 and 1, its Warn and Error to Info and Error. Messages are only
// formatted when their level is on.
func cacheLogger(l logr.Logger) log.Logger {
	l = l.WithName("go-control-plane")
	at := func(v logr.Logger) func(string, ...any) {
		return func(format string, args ...any) {
			if v.Enabled() {
				v.Info(fmt.Sprintf(format, args...))
			}
		}
	}
	return log.LoggerFuncs{
		DebugFunc: at(l.V(2)),
		InfoFunc:  at(l.V(1)),
		WarnFunc:  at(l),
		ErrorFunc: func(format string, args ...any) { l.Error(nil, fmt.Sprintf(format, args...)) },
	}
}
