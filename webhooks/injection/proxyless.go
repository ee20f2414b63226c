package injection

import (
	"encoding/json"
	"net"
	"path"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// EnvBootstrapConfig holds the proxyless bootstrap inline (grpc-go, Java and C++ read it when
// GRPC_XDS_BOOTSTRAP names no file).
const (
	EnvBootstrap       = "GRPC_XDS_BOOTSTRAP"
	EnvBootstrapConfig = "GRPC_XDS_BOOTSTRAP_CONFIG"
)

// fileRefresh is how often gRPC reads the certificate files again. Its own default (10 minutes)
// outlasts how long the trust bundle keeps an old CA during a rotation.
const fileRefresh = "60s"

// injectProxyless gives every application container the xDS bootstrap (inline, in
// GRPC_XDS_BOOTSTRAP_CONFIG), the identity Secret and the trust bundle as files for gRPC's
// file_watcher certificate provider. A container that already names a bootstrap keeps its own.
func injectProxyless(pod *corev1.Pod, w workload, cfg Config) error {
	doc, err := grpcBootstrap(w, cfg)
	if err != nil {
		return err
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == EnvBootstrap || e.Name == EnvBootstrapConfig }) {
			continue
		}
		// The bootstrap refers to the downward-API variables, which must come first.
		c.Env = append(c.Env, podEnv()...)
		c.Env = append(c.Env, corev1.EnvVar{Name: EnvBootstrapConfig, Value: string(doc)})
		c.VolumeMounts = append(c.VolumeMounts,
			corev1.VolumeMount{Name: IdentityVolume, MountPath: IdentityDir, ReadOnly: true},
			corev1.VolumeMount{Name: TrustVolume, MountPath: TrustDir, ReadOnly: true},
		)
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, identityVolume(w), corev1.Volume{
		Name: TrustVolume,
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: zerotrust.TrustBundleName},
			Items:                []corev1.KeyToPath{{Key: zerotrust.TrustBundleKey, Path: zerotrust.TrustBundleKey}},
		}},
	})
	return nil
}

// grpcBootstrap is the GRPC_XDS_BOOTSTRAP document of docs/xds.md for the workload: mutual TLS to
// the xDS server and a file_watcher provider named envoy.CertificateProviderInstance, both over
// the workload certificate and the trust bundle.
func grpcBootstrap(w workload, cfg Config) ([]byte, error) {
	x, err := cfg.xds()
	if err != nil {
		return nil, err
	}
	files := map[string]any{
		"certificate_file":    path.Join(IdentityDir, corev1.TLSCertKey),
		"private_key_file":    path.Join(IdentityDir, corev1.TLSPrivateKeyKey),
		"ca_certificate_file": path.Join(TrustDir, zerotrust.TrustBundleKey),
		"refresh_interval":    fileRefresh,
	}
	md := map[string]any{
		envoy.NodeMetadataFlavour:        string(envoy.FlavourGRPC),
		envoy.NodeMetadataNamespace:      w.namespace,
		envoy.NodeMetadataPod:            ref(envPodName),
		envoy.NodeMetadataServiceAccount: w.serviceAccount,
	}
	cluster := w.namespace
	if w.app != "" {
		md[envoy.NodeMetadataWorkload] = w.app
		cluster = w.app + "." + w.namespace
	}
	if w.version != "" {
		md[envoy.NodeMetadataVersion] = w.version
	}
	return json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      net.JoinHostPort(x.host, strconv.Itoa(int(x.port))),
			"channel_creds":   []any{map[string]any{"type": "tls", "config": files}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       envoy.NodeID(envoy.FlavourGRPC, ref(envPodIP), ref(envPodName), w.namespace),
			"cluster":  cluster,
			"metadata": md,
		},
		"certificate_providers": map[string]any{
			envoy.CertificateProviderInstance: map[string]any{"plugin_name": "file_watcher", "config": files},
		},
		"server_listener_resource_name_template": envoy.ServerListenerNameTemplate,
	})
}
