package testcertmanager

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// The kinds of cert-manager.io/v1 that the controllers act on, for unstructured objects.
var (
	CertificateGVK        = schema.GroupVersionKind{Group: Group, Version: "v1", Kind: "Certificate"}
	CertificateRequestGVK = schema.GroupVersionKind{Group: Group, Version: "v1", Kind: "CertificateRequest"}
	IssuerGVK             = schema.GroupVersionKind{Group: Group, Version: "v1", Kind: "Issuer"}
	ClusterIssuerGVK      = schema.GroupVersionKind{Group: Group, Version: "v1", Kind: "ClusterIssuer"}
)

// Group is cert-manager's API group, the group of an issuerRef to its Issuers and ClusterIssuers.
const Group = "cert-manager.io"

// defaultWaitTimeout bounds the waits whose ctx has no deadline.
const defaultWaitTimeout = 30 * time.Second

// CA is a CA ClusterIssuer that CreateCA set up, with its certificate.
type CA struct {
	// IssuerName is the CA ClusterIssuer's name: the issuerRef of what it is to sign.
	IssuerName string
	// SelfSignedIssuerName is the SelfSigned ClusterIssuer that signed the CA's certificate.
	SelfSignedIssuerName string
	// SecretName is the Secret, in the cluster resource namespace, that holds the CA's key pair
	// (tls.crt, tls.key, ca.crt); the CA's Certificate has the same name.
	SecretName string
	// Bundle is the CA certificate in PEM: the trust bundle for what the issuer signs.
	Bundle []byte
	// Certificate is Bundle parsed.
	Certificate *x509.Certificate
}

// IssuerRef is the spec.issuerRef of a Certificate or CertificateRequest for this CA to sign.
func (ca *CA) IssuerRef() map[string]any {
	return map[string]any{"name": ca.IssuerName, "kind": ClusterIssuerGVK.Kind, "group": Group}
}

// Pool is a certificate pool holding the CA certificate, to verify what the CA signed.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate)
	return pool
}

// CreateCA sets up the usual bootstrap of a private CA: a SelfSigned ClusterIssuer
// (<name>-selfsigned), a CA Certificate <name> that it signs (ECDSA P-256, its key pair in the
// Secret <name> in the cluster resource namespace), and the CA ClusterIssuer <name> that signs
// with that key pair. It returns once the CA ClusterIssuer is Ready; ctx bounds the whole, 30s
// when it has no deadline.
func (cm *CertManager) CreateCA(ctx context.Context, name string) (*CA, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultWaitTimeout)
		defer cancel()
	}
	ca := &CA{IssuerName: name, SelfSignedIssuerName: name + "-selfsigned", SecretName: name}
	ns := cm.opts.ClusterResourceNamespace
	objects := []*unstructured.Unstructured{
		newObject(ClusterIssuerGVK, "", ca.SelfSignedIssuerName, map[string]any{"selfSigned": map[string]any{}}),
		newObject(CertificateGVK, ns, name, map[string]any{
			"isCA":       true,
			"commonName": name,
			"secretName": ca.SecretName,
			"privateKey": map[string]any{"algorithm": "ECDSA", "size": int64(256)},
			"issuerRef":  map[string]any{"name": ca.SelfSignedIssuerName, "kind": ClusterIssuerGVK.Kind, "group": Group},
		}),
		newObject(ClusterIssuerGVK, "", name, map[string]any{"ca": map[string]any{"secretName": ca.SecretName}}),
	}
	for _, obj := range objects {
		if err := cm.client.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	secret, err := cm.WaitCertificate(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("the CA's certificate: %w", err)
	}
	if _, err := cm.WaitReady(ctx, ClusterIssuerGVK, "", name); err != nil {
		return nil, fmt.Errorf("the CA ClusterIssuer: %w", err)
	}
	ca.Bundle = secret.Data[corev1.TLSCertKey]
	if ca.Certificate, err = ParseCertificate(ca.Bundle); err != nil {
		return nil, fmt.Errorf("the CA's certificate in Secret %s/%s: %w", ns, name, err)
	}
	return ca, nil
}

// newObject is a cert-manager object with the given spec.
func newObject(gvk schema.GroupVersionKind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	obj.SetGroupVersionKind(gvk)
	obj.SetNamespace(namespace)
	obj.SetName(name)
	return obj
}

// WaitReady waits until the cert-manager object (a Certificate, CertificateRequest, Issuer or
// ClusterIssuer; namespace empty for a ClusterIssuer) has the condition Ready True for its
// current generation, and returns it. It gives up at once when cert-manager has said the object
// will not become Ready without a change (a CertificateRequest Denied, InvalidRequest or Failed,
// a Certificate whose issuance failed) or when the controllers have exited, and otherwise when
// ctx ends (after 30s when ctx has no deadline), with the last conditions in the message.
func (cm *CertManager) WaitReady(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultWaitTimeout)
		defer cancel()
	}
	what := gvk.Kind + " " + name
	if namespace != "" {
		what = gvk.Kind + " " + namespace + "/" + name
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "not found"
	for {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		err := cm.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj)
		switch {
		case err == nil:
			conds := conditions(obj)
			last = describe(conds)
			if ready, ok := conds["Ready"]; ok && ready.status == "True" &&
				(ready.observedGeneration == 0 || ready.observedGeneration >= obj.GetGeneration()) {
				return obj, nil
			}
			if err := failed(gvk, conds); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		case apierrors.IsNotFound(err):
			last = "not found"
		case ctx.Err() == nil:
			last = "reading it: " + err.Error()
		}
		if err := cm.Err(); err != nil {
			return nil, fmt.Errorf("waiting for %s to be Ready: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s not Ready: %w (conditions: %s)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// WaitCertificate waits until the Certificate is Ready (see WaitReady) and returns its Secret.
func (cm *CertManager) WaitCertificate(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	obj, err := cm.WaitReady(ctx, CertificateGVK, namespace, name)
	if err != nil {
		return nil, err
	}
	secretName, _, _ := unstructured.NestedString(obj.Object, "spec", "secretName")
	secret := &corev1.Secret{}
	if err := cm.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: secretName}, secret); err != nil {
		return nil, fmt.Errorf("the Secret of Certificate %s/%s: %w", namespace, name, err)
	}
	return secret, nil
}

// WaitCertificateRequest waits until the CertificateRequest is issued (Ready, see WaitReady) and
// returns what its status carries: the certificate (PEM, the leaf first) and the CA (PEM).
func (cm *CertManager) WaitCertificateRequest(ctx context.Context, namespace, name string) (cert, ca []byte, err error) {
	obj, err := cm.WaitReady(ctx, CertificateRequestGVK, namespace, name)
	if err != nil {
		return nil, nil, err
	}
	// status.certificate and status.ca are []byte fields: base64 in JSON.
	for _, f := range []struct {
		field string
		dst   *[]byte
	}{{"certificate", &cert}, {"ca", &ca}} {
		s, _, _ := unstructured.NestedString(obj.Object, "status", f.field)
		if *f.dst, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, nil, fmt.Errorf("CertificateRequest %s/%s: status.%s: %w", namespace, name, f.field, err)
		}
	}
	if len(cert) == 0 {
		return nil, nil, fmt.Errorf("CertificateRequest %s/%s is Ready without status.certificate", namespace, name)
	}
	return cert, ca, nil
}

// ParseCertificate parses the first certificate of a PEM bundle.
func ParseCertificate(pemData []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, pemData = pem.Decode(pemData)
		if block == nil {
			return nil, errors.New("no CERTIFICATE block in the PEM data")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// condition is one of status.conditions.
type condition struct {
	status, reason, message string
	observedGeneration      int64
	lastTransitionTime      time.Time
}

func conditions(obj *unstructured.Unstructured) map[string]condition {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	conds := map[string]condition{}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		gen, _, _ := unstructured.NestedInt64(m, "observedGeneration")
		transition, _ := time.Parse(time.RFC3339, str("lastTransitionTime"))
		conds[str("type")] = condition{
			status: str("status"), reason: str("reason"), message: str("message"),
			observedGeneration: gen, lastTransitionTime: transition,
		}
	}
	return conds
}

func describe(conds map[string]condition) string {
	if len(conds) == 0 {
		return "none yet"
	}
	var parts []string
	for _, t := range []string{"Ready", "Issuing", "Approved", "Denied", "InvalidRequest"} {
		if c, ok := conds[t]; ok {
			parts = append(parts, fmt.Sprintf("%s=%s %s: %s", t, c.status, c.reason, c.message))
		}
	}
	return strings.Join(parts, "; ")
}

// failed says why the object will not become Ready without a change, nil when it still may.
func failed(gvk schema.GroupVersionKind, conds map[string]condition) error {
	switch gvk {
	case CertificateRequestGVK:
		for _, t := range []string{"Denied", "InvalidRequest"} {
			if c := conds[t]; c.status == "True" {
				return fmt.Errorf("%s: %s: %s", t, c.reason, c.message)
			}
		}
		if c := conds["Ready"]; c.status == "False" && (c.reason == "Failed" || c.reason == "Denied") {
			return fmt.Errorf("failed: %s", c.message)
		}
	case CertificateGVK:
		// The issuing controller copies the failed CertificateRequest's reason.
		if c := conds["Issuing"]; c.status == "False" && (c.reason == "Failed" || c.reason == "Denied") {
			return fmt.Errorf("issuance failed (cert-manager tries again after its backoff): %s", c.message)
		}
	}
	return nil
}

// Renew has cert-manager issue the Certificate again now, as `cmctl renew` does: it sets the
// Certificate's Issuing condition to True with reason ManuallyTriggered (message "Certificate
// re-issuance manually triggered", observedGeneration the current generation) and updates it
// through the status subresource. cert-manager's trigger controller sets the same condition when
// the renewal time comes; the key manager, request manager and issuing controllers then renew
// (a new private key with the default rotationPolicy Always, a new CertificateRequest) and the
// issuing controller writes the Secret before it raises status.revision.
//
// Unlike cmctl, Renew first waits for an issuance under way to finish (a trigger during one would
// only relabel it, and no newer certificate would come), and tries the status update again on a
// conflict. It returns the Secret once the Certificate is Ready (see WaitReady) and issued again:
// status.revision past the one it had, the Issuing condition no longer True. ctx bounds the
// whole, 30s when it has no deadline.
func (cm *CertManager) Renew(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultWaitTimeout)
		defer cancel()
	}
	before, err := cm.waitIssued(ctx, namespace, name, 0)
	if err != nil {
		return nil, fmt.Errorf("before renewing: %w", err)
	}
	revision, _, _ := unstructured.NestedInt64(before.Object, "status", "revision")
	secretName, _, _ := unstructured.NestedString(before.Object, "spec", "secretName")
	secretKey := types.NamespacedName{Namespace: namespace, Name: secretName}
	old := &corev1.Secret{}
	if err := cm.client.Get(ctx, secretKey, old); err != nil {
		return nil, fmt.Errorf("the Secret of Certificate %s/%s: %w", namespace, name, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		crt := &unstructured.Unstructured{}
		crt.SetGroupVersionKind(CertificateGVK)
		if err := cm.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, crt); err != nil {
			return err
		}
		if err := setIssuingManuallyTriggered(crt); err != nil {
			return err
		}
		return cm.client.Status().Update(ctx, crt)
	})
	if err != nil {
		return nil, fmt.Errorf("triggering the issuance of Certificate %s/%s: %w", namespace, name, err)
	}
	if _, err := cm.waitIssued(ctx, namespace, name, revision); err != nil {
		return nil, fmt.Errorf("renewing: %w", err)
	}
	secret := &corev1.Secret{}
	if err := cm.client.Get(ctx, secretKey, secret); err != nil {
		return nil, fmt.Errorf("the Secret of Certificate %s/%s: %w", namespace, name, err)
	}
	if bytes.Equal(secret.Data[corev1.TLSCertKey], old.Data[corev1.TLSCertKey]) {
		return nil, fmt.Errorf("the Secret %s of Certificate %s/%s holds the certificate it had before the renewal, though status.revision moved past %d",
			secretName, namespace, name, revision)
	}
	return secret, nil
}

// waitIssued waits until the Certificate is Ready (see WaitReady), its status.revision is past
// revision and its Issuing condition is not True (the issuing controller removes it, or with the
// ServerSideApply feature sets it False with reason Issued), and returns it.
func (cm *CertManager) waitIssued(ctx context.Context, namespace, name string, revision int64) (*unstructured.Unstructured, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		crt, err := cm.WaitReady(ctx, CertificateGVK, namespace, name)
		if err != nil {
			return nil, err
		}
		got, _, _ := unstructured.NestedInt64(crt.Object, "status", "revision")
		conds := conditions(crt)
		if conds["Issuing"].status != "True" && got > revision {
			return crt, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for Certificate %s/%s to be issued past revision %d: %w (revision %d; %s)",
				namespace, name, revision, ctx.Err(), got, describe(conds))
		case <-tick.C:
		}
	}
}

// setIssuingManuallyTriggered sets the Issuing condition as cmctl renew does (cert-manager's
// apiutil.SetCertificateCondition): lastTransitionTime now, unless the condition was True already.
func setIssuingManuallyTriggered(crt *unstructured.Unstructured) error {
	list, _, err := unstructured.NestedSlice(crt.Object, "status", "conditions")
	if err != nil {
		return err
	}
	cond := map[string]any{
		"type":               "Issuing",
		"status":             "True",
		"reason":             "ManuallyTriggered",
		"message":            "Certificate re-issuance manually triggered",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		"observedGeneration": crt.GetGeneration(),
	}
	found := false
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok || m["type"] != "Issuing" {
			continue
		}
		if m["status"] == "True" && m["lastTransitionTime"] != nil {
			cond["lastTransitionTime"] = m["lastTransitionTime"]
		}
		list[i], found = cond, true
		break
	}
	if !found {
		list = append(list, cond)
	}
	return unstructured.SetNestedSlice(crt.Object, list, "status", "conditions")
}
