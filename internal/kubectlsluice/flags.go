package kubectlsluice

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeFlags are kubectl's connection flags (--kubeconfig, --context, -n, --token, --as, -s, ...),
// bound through client-go's clientcmd, which is what cli-runtime's genericclioptions.ConfigFlags
// wraps: the same names and meanings, without linking genericclioptions' resource builder and
// kustomize (≈55 MB of binary).
type kubeFlags struct {
	rules     *clientcmd.ClientConfigLoadingRules
	overrides clientcmd.ConfigOverrides
}

func newKubeFlags() *kubeFlags {
	return &kubeFlags{rules: clientcmd.NewDefaultClientConfigLoadingRules()}
}

func (f *kubeFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.rules.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "Path to the kubeconfig file to use for CLI requests.")
	clientcmd.BindOverrideFlags(&f.overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
}

func (f *kubeFlags) clientConfig() clientcmd.ClientConfig {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(f.rules, &f.overrides)
}

func (f *kubeFlags) restConfig() (*rest.Config, error) { return f.clientConfig().ClientConfig() }

// namespace is -n, else the kubeconfig context's namespace, else default.
func (f *kubeFlags) namespace() (string, error) {
	ns, _, err := f.clientConfig().Namespace()
	return ns, err
}
