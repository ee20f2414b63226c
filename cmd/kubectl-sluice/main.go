// Command kubectl-sluice is the kubectl plugin of Sluice: `kubectl sluice --help`.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
)

func main() {
	cmd := kubectlsluice.NewCommand(kubectlsluice.Options{
		Streams: kubectlsluice.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr},
	})
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var exit *kubectlsluice.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code)
		}
		os.Exit(kubectlsluice.ExitOtherError)
	}
}
