package main

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// injectCAFrom is cert-manager's annotation naming the Certificate (namespace/name) whose CA
// cainjector puts into a webhook configuration.
const injectCAFrom = "cert-manager.io/inject-ca-from"

// webhookServing finds, from the webhook configurations, the Secret of their serving Certificate
// and the Service they call. Under OLM both are OLM's own, so the bundle drops them.
func (in *install) webhookServing() (secret, service string, err error) {
	for _, wc := range in.webhooks {
		_, certName, _ := strings.Cut(wc.GetAnnotations()[injectCAFrom], "/")
		for _, crt := range in.certs {
			if crt.GetName() == certName {
				secret, _, _ = unstructured.NestedString(crt.Object, "spec", "secretName")
			}
		}
		hooks, _, _ := unstructured.NestedSlice(wc.Object, "webhooks")
		for _, h := range hooks {
			name, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "name")
			if service != "" && name != service {
				return "", "", fmt.Errorf("%s calls Service %s and %s; the bundle has one webhook Service", wc.GetName(), service, name)
			}
			service = name
		}
	}
	return secret, service, nil
}

// olmDeployment is the manager's Deployment as OLM runs it: OLM mounts its own webhook serving
// certificate where controller-runtime looks by default, so the cert-manager Secret's volume and
// --webhook-cert-dir go; the image is the release's.
func olmDeployment(d *unstructured.Unstructured, image, webhookSecret string) (*unstructured.Unstructured, error) {
	d = d.DeepCopy()
	podSpec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	var dropped []string
	var volumes []any
	for _, v := range asSlice(podSpec["volumes"]) {
		secret, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName")
		if webhookSecret != "" && secret == webhookSecret {
			dropped = append(dropped, v.(map[string]any)["name"].(string))
			continue
		}
		volumes = append(volumes, v)
	}
	setOrDelete(podSpec, "volumes", volumes)
	found := false
	for _, c := range asSlice(podSpec["containers"]) {
		c := c.(map[string]any)
		var mounts []any
		for _, m := range asSlice(c["volumeMounts"]) {
			if !slices.Contains(dropped, m.(map[string]any)["name"].(string)) {
				mounts = append(mounts, m)
			}
		}
		setOrDelete(c, "volumeMounts", mounts)
		if c["name"] != managerContainer {
			continue
		}
		found = true
		c["image"] = image
		var args []any
		for _, a := range asSlice(c["args"]) {
			if !strings.HasPrefix(a.(string), "--webhook-cert-dir") {
				args = append(args, a)
			}
		}
		setOrDelete(c, "args", args)
	}
	if !found {
		return nil, fmt.Errorf("the Deployment %s has no container named %s", d.GetName(), managerContainer)
	}
	if err := unstructured.SetNestedMap(d.Object, podSpec, "spec", "template", "spec"); err != nil {
		return nil, err
	}
	return d, nil
}

// setOrDelete sets m[key] to a non-empty list, or removes the key (no `key: null` in the YAML).
func setOrDelete(m map[string]any, key string, list []any) {
	if len(list) == 0 {
		delete(m, key)
		return
	}
	m[key] = list
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// strategy is the CSV's deployment install strategy: the manager's Deployment and the rules of
// the Roles (permissions) and ClusterRoles (clusterPermissions) bound to its service account.
// bound says which roles went into it (kind/name); the others are bundle manifests of their own.
func (in *install) strategy(deploy *unstructured.Unstructured) (map[string]any, map[string]bool, error) {
	sa, _, _ := unstructured.NestedString(deploy.Object, "spec", "template", "spec", "serviceAccountName")
	if sa == "" {
		return nil, nil, fmt.Errorf("the Deployment %s names no serviceAccountName", deploy.GetName())
	}
	bound := map[string]bool{}
	var rules, clusterRules []any
	bindings := slices.Clone(in.bindings)
	slices.SortFunc(bindings, func(a, b *unstructured.Unstructured) int {
		return strings.Compare(a.GetKind()+"/"+a.GetName(), b.GetKind()+"/"+b.GetName())
	})
	for _, b := range bindings {
		if !bindsServiceAccount(b, sa) {
			continue
		}
		kind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
		i := slices.IndexFunc(in.roles, func(r *unstructured.Unstructured) bool { return r.GetKind() == kind && r.GetName() == name })
		if i < 0 {
			return nil, nil, fmt.Errorf("%s %s binds %s %s, which config/default does not have", b.GetKind(), b.GetName(), kind, name)
		}
		bound[kind+"/"+name] = true
		roleRules, _, _ := unstructured.NestedSlice(in.roles[i].Object, "rules")
		if b.GetKind() == "RoleBinding" {
			rules = append(rules, roleRules...)
		} else {
			clusterRules = append(clusterRules, roleRules...)
		}
	}
	spec := map[string]any{
		"deployments": []any{map[string]any{
			"name":  deploy.GetName(),
			"label": toAny(deploy.GetLabels()),
			"spec":  deploy.Object["spec"],
		}},
	}
	if len(rules) > 0 {
		spec["permissions"] = []any{map[string]any{"serviceAccountName": sa, "rules": rules}}
	}
	if len(clusterRules) > 0 {
		spec["clusterPermissions"] = []any{map[string]any{"serviceAccountName": sa, "rules": clusterRules}}
	}
	return spec, bound, nil
}

func bindsServiceAccount(binding *unstructured.Unstructured, sa string) bool {
	subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
	for _, s := range subjects {
		s := s.(map[string]any)
		if s["kind"] == "ServiceAccount" && s["name"] == sa {
			return true
		}
	}
	return false
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// webhookDefinitions turns the webhook configurations into the CSV's webhookdefinitions, which
// OLM serves through the manager's Deployment with a certificate of its own.
func (in *install) webhookDefinitions(deploy *unstructured.Unstructured, service string) (defs []any, notes []string, err error) {
	targetPort, err := in.webhookTargetPort(deploy, service)
	if err != nil {
		return nil, nil, err
	}
	for _, wc := range in.webhooks {
		typ := "ValidatingAdmissionWebhook"
		if wc.GetKind() == "MutatingWebhookConfiguration" {
			typ = "MutatingAdmissionWebhook"
		}
		hooks, _, _ := unstructured.NestedSlice(wc.Object, "webhooks")
		for _, h := range hooks {
			h := h.(map[string]any)
			def := map[string]any{
				"type":           typ,
				"generateName":   h["name"],
				"deploymentName": deploy.GetName(),
				"containerPort":  int64(443),
				"targetPort":     targetPort,
			}
			if p, ok, _ := unstructured.NestedString(h, "clientConfig", "service", "path"); ok {
				def["webhookPath"] = p
			}
			for _, field := range []string{"admissionReviewVersions", "failurePolicy", "sideEffects", "rules",
				"objectSelector", "matchPolicy", "timeoutSeconds", "reinvocationPolicy"} {
				if v, ok := h[field]; ok {
					def[field] = v
				}
			}
			if _, ok := h["namespaceSelector"]; ok {
				notes = append(notes, fmt.Sprintf("webhook %s: OLM replaces its namespaceSelector with the OperatorGroup's", h["name"]))
			}
			defs = append(defs, def)
		}
	}
	slices.SortFunc(defs, func(a, b any) int {
		return strings.Compare(a.(map[string]any)["generateName"].(string), b.(map[string]any)["generateName"].(string))
	})
	return defs, notes, nil
}

// webhookTargetPort is the manager's container port behind the webhook Service, as a number.
func (in *install) webhookTargetPort(deploy *unstructured.Unstructured, service string) (int64, error) {
	if service == "" {
		return 0, nil
	}
	i := slices.IndexFunc(in.services, func(s *unstructured.Unstructured) bool { return s.GetName() == service })
	if i < 0 {
		return 0, fmt.Errorf("the webhooks call Service %s, which config/default does not have", service)
	}
	ports, _, _ := unstructured.NestedSlice(in.services[i].Object, "spec", "ports")
	if len(ports) != 1 {
		return 0, fmt.Errorf("the webhook Service %s: want one port, has %d", service, len(ports))
	}
	target := ports[0].(map[string]any)["targetPort"]
	if n, ok := target.(int64); ok {
		return n, nil
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		for _, p := range asSlice(c.(map[string]any)["ports"]) {
			p := p.(map[string]any)
			if p["name"] == target {
				return p["containerPort"].(int64), nil
			}
		}
	}
	return 0, fmt.Errorf("the webhook Service %s's targetPort %v is no container port of %s", service, target, deploy.GetName())
}
