package kubectlsluice

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// nodeConfig is the operator's /debug/xds/config answer (xds/server.StreamConfig).
type nodeConfig struct {
	NodeID  string `json:"nodeID"`
	Streams []struct {
		StreamID int64 `json:"streamID"`
		Types    map[string]struct {
			SentVersion  string `json:"sentVersion,omitempty"`
			AckedVersion string `json:"ackedVersion,omitempty"`
			Resources    []struct {
				Name     string          `json:"name"`
				Resource json.RawMessage `json:"resource"`
			} `json:"resources"`
		} `json:"types"`
	} `json:"streams"`
}

// proxyConfig is what proxy-config prints: per type, the versions and the resources by name.
type proxyConfig struct {
	Pod      string                `json:"pod"`
	NodeID   string                `json:"nodeID"`
	Operator string                `json:"operator"`
	Types    map[string]typeConfig `json:"types"`
}

type typeConfig struct {
	SentVersion  string                     `json:"sentVersion,omitempty"`
	AckedVersion string                     `json:"ackedVersion,omitempty"`
	Resources    map[string]json.RawMessage `json:"resources"`
}

func (e *env) proxyConfigCommand() *cobra.Command {
	var (
		op  operatorFlags
		out outputFlag
		typ string
	)
	cmd := &cobra.Command{
		Use:   "proxy-config POD",
		Short: "Print the config the operator sent a pod's proxy (secret material redacted)",
		Example: "  kubectl sluice proxy-config checkout-5d8f-abcde -n shop --type routes\n" +
			"  kubectl sluice proxy-config checkout-5d8f-abcde -n shop -o json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if out.format == "" {
				out.format = "yaml"
			}
			var urls []string
			if typ != "" {
				u, err := typeURLOf(typ)
				if err != nil {
					return err
				}
				urls = []string{u}
			}
			return e.proxyConfig(cmd.Context(), args[0], op, out, urls)
		},
	}
	op.add(cmd)
	out.add(cmd)
	cmd.Flags().StringVar(&typ, "type", "", "Only this type: listeners, routes, clusters, endpoints or secrets (default: all)")
	return cmd
}

func typeURLOf(name string) (string, error) {
	var names []string
	for _, t := range xdsTypes {
		if strings.EqualFold(name, t.name) || strings.EqualFold(name, t.short) {
			return t.url, nil
		}
		names = append(names, t.name)
	}
	return "", fmt.Errorf("--type %q: use one of %s", name, strings.Join(names, ", "))
}

func (e *env) proxyConfig(ctx context.Context, pod string, op operatorFlags, out outputFlag, urls []string) error {
	return e.withProxies(ctx, op, func(ns string, reps []replica, f fetched) error {
		for _, r := range reps {
			for _, s := range f.streams[r.name] {
				if sns, spod, ok := podOfNode(s.NodeID); !ok || sns != ns || spod != pod {
					continue
				}
				var nc nodeConfig
				if err := r.get(ctx, debugConfigPath, url.Values{"node": {s.NodeID}}, &nc); err != nil {
					return err
				}
				return out.print(e.out(), flatten(nc, pod+"."+ns, r.name, urls))
			}
		}
		return fmt.Errorf("no proxy of pod %s/%s is connected to the operator (`kubectl sluice proxy-status -A` lists the connected ones)", ns, pod)
	})
}

// flatten merges the node's streams into one view per type (named listeners, routes, ...), kept
// to urls when given.
func flatten(nc nodeConfig, pod, operator string, urls []string) proxyConfig {
	pc := proxyConfig{Pod: pod, NodeID: nc.NodeID, Operator: operator, Types: map[string]typeConfig{}}
	for _, t := range xdsTypes {
		if len(urls) > 0 && urls[0] != t.url {
			continue
		}
		for _, s := range nc.Streams {
			tc, ok := s.Types[t.url]
			if !ok {
				continue
			}
			merged := pc.Types[t.name]
			if merged.Resources == nil {
				merged.Resources = map[string]json.RawMessage{}
			}
			merged.SentVersion, merged.AckedVersion = tc.SentVersion, tc.AckedVersion
			for _, r := range tc.Resources {
				merged.Resources[r.Name] = r.Resource
			}
			pc.Types[t.name] = merged
		}
	}
	return pc
}
