package zerotrust

import "maps"

// TrustDomainBundles are the bundles Envoy's SDS serves, one per trust domain: its roots now
// (TrustDomainRoots) plus the roots that the namespaces using it still hold in their trust bundle
// ConfigMaps (held, by namespace) and that no trust domain they use carries any more: the roots
// the leader retains (TrustBundles). uses names each namespace's trust domains in use.
//
// The retention is read from the ConfigMaps, not decided again: it stays in one place, every
// replica serves the same bundle without a clock of its own, and a new leader keeps it. A root
// leaves Envoy's bundle when the leader drops it from the ConfigMaps. A held root that no Secret
// carries counts whether or not the leader has marked it retained yet, so a CA rotation never
// drops the old root from SDS between the Secret's change and the ConfigMap's. A namespace that
// uses two trust domains cannot say which one a retained root was for: both get it, as its
// proxyless bundle does. A trust domain with no root is left out.
func TrustDomainBundles(roots map[string]Roots, uses map[string]map[string]bool, held map[string]TrustBundle) map[string]Roots {
	out := map[string]Roots{}
	for td, r := range roots {
		if len(r) > 0 {
			out[td] = maps.Clone(r)
		}
	}
	for ns, tds := range uses {
		current := Roots{}
		for td := range tds {
			maps.Copy(current, roots[td])
		}
		for fp, der := range RootsOf(held[ns].Roots) {
			if _, ok := current[fp]; ok {
				continue
			}
			for td := range tds {
				if out[td] == nil {
					out[td] = Roots{}
				}
				out[td][fp] = der
			}
		}
	}
	return out
}
