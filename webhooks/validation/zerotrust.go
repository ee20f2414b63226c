package validation

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
)

// IssuerState is what the webhook found of a ZeroTrust's spec.identity.issuerRef.
type IssuerState int

// The issuer states.
const (
	// IssuerNotChecked: no identity, or an issuer outside cert-manager.io (an external issuer).
	IssuerNotChecked IssuerState = iota
	IssuerReady
	IssuerNotReady
	IssuerMissing
	// IssuerKindNotInstalled: cert-manager's CRDs are not in the cluster.
	IssuerKindNotInstalled
)

// CertManagerGroup is the API group of the issuers the webhook looks up.
const CertManagerGroup = "cert-manager.io"

// ZeroTrustRelated is what a ZeroTrust's rules read from the cluster.
type ZeroTrustRelated struct {
	Issuer IssuerState
	// Services are the Services the rules name (to.service) that exist, by name.
	Services map[string]*corev1.Service
	// ZeroTrusts are the other ZeroTrusts of the namespace.
	ZeroTrusts []meshv1alpha1.ZeroTrust
}

// ValidateZeroTrust checks a ZeroTrust; old is the object it replaces (nil on create).
func ValidateZeroTrust(zt, old *meshv1alpha1.ZeroTrust, rel ZeroTrustRelated) Result {
	var r Result
	spec := field.NewPath("spec")
	scope, err := selectorKey(zt.Spec.Selector)
	if err != nil {
		r.fail(field.Invalid(spec.Child("selector"), zt.Spec.Selector.String(), err.Error()+
			"; matchExpressions operators are In, NotIn (with values), Exists and DoesNotExist (without)"))
	} else {
		checkZeroTrustUnique(&r, zt, old, scope, rel.ZeroTrusts)
	}
	checkIssuer(&r, zt, rel.Issuer)
	checkRules(&r, zt, rel.Services)
	return r.done()
}

// selectorKey is a canonical form of a selector: equal keys select the same pods. An empty and an
// omitted selector both mean the whole namespace.
func selectorKey(sel *metav1.LabelSelector) (string, error) {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return "", nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "", err
	}
	reqs, _ := s.Requirements()
	parts := make([]string, 0, len(reqs))
	for _, req := range reqs {
		// "app in (web)" selects what "app=web" does.
		if req.Operator() == selection.In && req.Values().Len() == 1 {
			parts = append(parts, req.Key()+"="+req.Values().UnsortedList()[0])
			continue
		}
		parts = append(parts, req.String())
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ","), nil
}

// checkZeroTrustUnique rejects a ZeroTrust whose selector equals another's in the namespace: the
// two would tie on every pod, and the newer would cover none.
func checkZeroTrustUnique(r *Result, zt, old *meshv1alpha1.ZeroTrust, scope string, others []meshv1alpha1.ZeroTrust) {
	for i := range others {
		o := &others[i]
		if o.Name == zt.Name || o.DeletionTimestamp != nil {
			continue
		}
		if key, err := selectorKey(o.Spec.Selector); err != nil || key != scope {
			continue
		}
		var oldScope string
		if old != nil {
			oldScope, _ = selectorKey(old.Spec.Selector)
		}
		what := "the whole namespace"
		if scope != "" {
			what = "the pods of selector " + scope
		}
		duplicate(r, old != nil && oldScope == scope, field.NewPath("spec", "selector"), scope, fmt.Sprintf(
			"ZeroTrust %s already covers %s; merge the two or give this one a more specific selector", o.Name, what))
	}
}

func checkIssuer(r *Result, zt *meshv1alpha1.ZeroTrust, state IssuerState) {
	id := zt.Spec.Identity
	if id == nil {
		return
	}
	path := field.NewPath("spec", "identity", "issuerRef")
	ref := id.IssuerRef
	kind := ref.Kind
	if kind == "" {
		kind = "Issuer"
	}
	where := ref.Name
	if kind == "Issuer" {
		where = zt.Namespace + "/" + ref.Name
	}
	switch state {
	case IssuerMissing:
		r.warn(path.Child("name"), fmt.Sprintf("cert-manager %s %s does not exist yet; no workload certificate is issued until it does", kind, where))
	case IssuerNotReady:
		r.warn(path.Child("name"), fmt.Sprintf("cert-manager %s %s is not Ready; workload certificates wait for it", kind, where))
	case IssuerKindNotInstalled:
		r.warn(path, "cert-manager is not installed (no "+kind+" kind in "+CertManagerGroup+"); install it before workloads need certificates")
	}
}

// checkRules warns about rules that can never apply as written.
func checkRules(r *Result, zt *meshv1alpha1.ZeroTrust, services map[string]*corev1.Service) {
	rules := field.NewPath("spec", "rules")
	if len(zt.Spec.Rules) > 0 && zt.Spec.MTLS.Mode != meshv1alpha1.MTLSStrict && zt.Spec.MTLS.Mode != "" {
		r.warn(rules, fmt.Sprintf("rules are enforced only under STRICT mutual TLS (mode is %s): callers are not authenticated otherwise", zt.Spec.MTLS.Mode))
	}
	trustDomain := ""
	if zt.Spec.Identity != nil {
		trustDomain = zt.Spec.Identity.TrustDomain
	}
	for i, rule := range zt.Spec.Rules {
		path := rules.Index(i)
		svc := services[rule.To.Service]
		if svc == nil {
			r.warn(path.Child("to", "service"), fmt.Sprintf("Service %s/%s does not exist yet; the rule applies once it does", zt.Namespace, rule.To.Service))
		} else {
			for j, port := range rule.To.Ports {
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
					r.warn(path.Child("to", "ports").Index(j), fmt.Sprintf("Service %s has no port %d (its ports: %s); this port allows nothing", svc.Name, port, servicePorts(svc)))
				}
			}
		}
		if trustDomain == "" {
			continue
		}
		for j, from := range rule.From {
			td, _, _ := strings.Cut(strings.TrimPrefix(from.Principal, "spiffe://"), "/")
			if from.Principal != "" && td != trustDomain {
				r.warn(path.Child("from").Index(j).Child("principal"), fmt.Sprintf(
					"is in trust domain %s, not this ZeroTrust's %s: its certificates must chain to a CA the workloads trust", td, trustDomain))
			}
		}
	}
}

// MeshWideIdentity returns the identity a ZeroTrust without one takes from the mesh-wide
// ZeroTrust (the oldest with an empty selector and an identity in the operator's namespace, among
// candidates), with that ZeroTrust's name; nil when the ZeroTrust needs none or none is found.
// The CRD requires an identity unless mtls.mode is DISABLE; this default lets a namespace's
// ZeroTrust name only its mode and rules.
func MeshWideIdentity(zt *meshv1alpha1.ZeroTrust, candidates []meshv1alpha1.ZeroTrust, operatorNamespace string) (*meshv1alpha1.Identity, string) {
	if zt.Spec.Identity != nil || zt.Spec.MTLS.Mode == meshv1alpha1.MTLSDisable {
		return nil, ""
	}
	wide, _ := selectorKey(zt.Spec.Selector)
	if zt.Namespace == operatorNamespace && wide == "" {
		return nil, "" // the mesh-wide ZeroTrust itself
	}
	var best *meshv1alpha1.ZeroTrust
	for i := range candidates {
		c := &candidates[i]
		key, err := selectorKey(c.Spec.Selector)
		if c.Namespace != operatorNamespace || err != nil || key != "" || c.Spec.Identity == nil || c.DeletionTimestamp != nil {
			continue
		}
		if best == nil || zerotrust.Older(c, best) {
			best = c
		}
	}
	if best == nil {
		return nil, ""
	}
	return best.Spec.Identity.DeepCopy(), best.Name
}
