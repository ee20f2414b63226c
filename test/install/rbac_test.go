package install_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// boundRule is one rule the manager's ServiceAccount is granted, with the role granting it.
type boundRule struct {
	role string
	rule rbacv1.PolicyRule
}

// managerRules lists the rules of every Role and ClusterRole config/default binds to the manager.
func managerRules(t *testing.T) []boundRule {
	t.Helper()
	var rules []boundRule
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, obj := range ofKind(kind) {
			b := typed[rbacv1.RoleBinding](t, obj) // a ClusterRoleBinding has the same fields
			if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == "ServiceAccount" && s.Namespace == installNamespace && s.Name == managerServiceAccount
			}) {
				continue
			}
			namespace := obj.GetNamespace() // a Role is the binding's namespace's; a ClusterRole has none
			if b.RoleRef.Kind == "ClusterRole" {
				namespace = ""
			}
			role := find(t, b.RoleRef.Kind, namespace, b.RoleRef.Name)
			for _, r := range typed[rbacv1.ClusterRole](t, role).Rules {
				rules = append(rules, boundRule{role: b.RoleRef.Kind + "/" + b.RoleRef.Name, rule: r})
			}
		}
	}
	return rules
}

// TestManagerRBACIsMinimal lists what the manager may do and fails on any wildcard, and on any
// write to Secrets (the manager may read the identity Secrets cert-manager writes, never change
// them).
func TestManagerRBACIsMinimal(t *testing.T) {
	rules := managerRules(t)
	if len(rules) == 0 {
		t.Fatal("config/default binds no rule to the manager's ServiceAccount")
	}
	readOnly := []string{"get", "list", "watch"}
	for _, br := range rules {
		r := br.rule
		t.Logf("%s: groups %q resources %q urls %q verbs %q", br.role, r.APIGroups, r.Resources, r.NonResourceURLs, r.Verbs)
		for field, values := range map[string][]string{
			"apiGroups": r.APIGroups, "resources": r.Resources, "verbs": r.Verbs,
			"nonResourceURLs": r.NonResourceURLs, "resourceNames": r.ResourceNames,
		} {
			if slices.ContainsFunc(values, func(v string) bool { return strings.Contains(v, "*") }) {
				t.Errorf("%s grants a wildcard in %s: %q", br.role, field, values)
			}
		}
		if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "secrets") {
			for _, v := range r.Verbs {
				if !slices.Contains(readOnly, v) {
					t.Errorf("%s lets the manager %s Secrets; it may only read them", br.role, v)
				}
			}
		}
	}
}

// TestManagerRunsWithItsOwnRBAC runs the manager impersonating its ServiceAccount, with only the
// RBAC config/default grants, and has each reconciler do its work: leader election, the mesh
// reconciler and TrafficPolicy status, the Rollout controller (which creates the primary
// Deployment with an owner reference) and the ZeroTrust identity controller (which creates
// cert-manager Certificates). No request of the manager may be forbidden.
func TestManagerRunsWithItsOwnRBAC(t *testing.T) {
	needAPIServer(t)
	ensureNamespace(t)
	ctx := t.Context()
	for _, obj := range rendered {
		switch obj.GetKind() {
		case "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			if err := env.Client.Apply(ctx, applyConfig(obj.DeepCopy()), fieldOwner, forceOwnership); err != nil {
				t.Fatalf("applying %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
		}
	}

	forbidden := &forbiddenLog{}
	cfg := asManager(forbidden)
	checkImpersonation(t, cfg, forbidden)

	operator, err := testmesh.StartOperator(cfg, manager.Options{
		Namespace:               installNamespace,
		LeaderElect:             true,
		LeaderElectionNamespace: installNamespace,
		GracefulShutdown:        5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer operator.Stop()

	const ns = "shop" // the samples' namespace
	createApp(t, ns)
	samples, err := render("config/samples")
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range samples {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatalf("creating sample %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}

	k8s := env.Client
	testmesh.Eventually(t, 60*time.Second, 200*time.Millisecond, func() error {
		if err := forbidden.err(); err != nil {
			t.Fatal(err) // no waiting: a refused request is the finding
		}
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: manager.LeaderElectionID}, lease); err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checkout-primary"}, &appsv1.Deployment{}); err != nil {
			return fmt.Errorf("the Rollout's primary Deployment: %w", err)
		}
		ro := &meshv1alpha1.Rollout{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checkout"}, ro); err != nil {
			return err
		}
		if ro.Status.ObservedGeneration == 0 {
			return errors.New("the Rollout's status is not written")
		}
		tp := &meshv1alpha1.TrafficPolicy{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checkout"}, tp); err != nil {
			return err
		}
		if len(tp.Status.Conditions) == 0 {
			return errors.New("the TrafficPolicy's status is not written")
		}
		zt := &meshv1alpha1.ZeroTrust{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, zt); err != nil {
			return err
		}
		if len(zt.Status.Conditions) == 0 {
			return errors.New("the ZeroTrust's status is not written")
		}
		certs := &unstructured.UnstructuredList{}
		certs.SetGroupVersionKind(testcertmanager.CertificateGVK.GroupVersion().WithKind("CertificateList"))
		if err := k8s.List(ctx, certs, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(certs.Items) == 0 {
			return fmt.Errorf("no identity Certificate in %s", ns)
		}
		return nil
	})
	operator.Stop()
	if err := forbidden.err(); err != nil {
		t.Error(err)
	}
}

// asManager is the API server's config as the manager's ServiceAccount, recording forbidden
// requests.
func asManager(forbidden *forbiddenLog) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + installNamespace + ":" + managerServiceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + installNamespace, "system:authenticated"},
	}
	cfg.Wrap(forbidden.wrap)
	return cfg
}

// checkImpersonation shows that the config is really limited, and that the log sees it: the
// manager may not list ServiceAccounts (it has no rule for them).
func checkImpersonation(t *testing.T, cfg *rest.Config, forbidden *forbiddenLog) {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.List(t.Context(), &corev1.ServiceAccountList{}, client.InNamespace("kube-system"))
	if !apierrors.IsForbidden(err) || forbidden.err() == nil {
		t.Fatalf("listing ServiceAccounts as the manager: want Forbidden and logged, got %v (log: %v)", err, forbidden.err())
	}
	forbidden.reset()
}

// createApp is what a team has before it applies the samples: a Deployment with its ReplicaSet,
// a Service, and a pod with a service account. No kube-controller-manager runs here, so the test
// creates the ReplicaSet as the Deployment controller would (the Rollout controller waits for it).
func createApp(t *testing.T, ns string) {
	t.Helper()
	ctx := t.Context()
	k8s := env.Client
	const hash = "5d8f7c9b6"
	labels := map[string]string{"app": "checkout"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: "checkout",
			Containers: []corev1.Container{{
				Name: "app", Image: "checkout:v1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}},
		},
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: template,
		},
	}
	withHash := func(m map[string]string) map[string]string {
		out := map[string]string{"pod-template-hash": hash}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	rsTemplate := *template.DeepCopy()
	rsTemplate.Labels = withHash(labels)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"}},
		deploy,
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"},
			Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
		},
	}
	for _, obj := range objs {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "checkout-" + hash, Labels: withHash(labels),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(deploy, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: withHash(labels)},
			Template: rsTemplate,
		},
	}
	if err := k8s.Create(ctx, rs); err != nil {
		t.Fatalf("creating ReplicaSet %s: %v", rs.Name, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "checkout-" + hash + "-x1", Labels: withHash(labels),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatalf("creating Pod %s: %v", pod.Name, err)
	}
}

// forbiddenLog records the requests the API server answered 403.
type forbiddenLog struct {
	mu       sync.Mutex
	requests []string
}

func (f *forbiddenLog) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			f.mu.Lock()
			f.requests = append(f.requests, req.Method+" "+req.URL.RequestURI())
			f.mu.Unlock()
		}
		return resp, err
	})
}

func (f *forbiddenLog) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return nil
	}
	return errors.New("forbidden requests of the manager:\n  " + strings.Join(f.requests, "\n  "))
}

func (f *forbiddenLog) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
