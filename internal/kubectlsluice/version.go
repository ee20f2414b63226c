package kubectlsluice

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/sluice-mesh/sluice/internal/kubectlsluice.Version=v0.1.0"; otherwise the
// module version `go install` recorded, or "dev".
var Version = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}()

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "kubectl-sluice %s\n", Version)
			return err
		},
	}
}
