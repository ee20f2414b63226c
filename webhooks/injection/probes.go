package injection

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// rewriteProbes points the kubelet's HTTP, TCP and gRPC probes of the application containers at
// the sidecar's health listener, which capture leaves alone, and returns what the sidecar must
// check for each. Without it, capture sends a probe to the sidecar's inbound port, where a STRICT
// ZeroTrust refuses it (plain text), and a TCP probe would only test that Envoy accepts
// connections. Exec probes, probes of another host and probes of a named port that no container
// port has stay as they are.
func rewriteProbes(pod *corev1.Pod) []envoy.AppProbe {
	var out []envoy.AppProbe
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		for _, p := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}, {"startup", c.StartupProbe}} {
			if p.probe == nil {
				continue
			}
			ap, ok := appProbe(c, p.probe)
			if !ok {
				continue
			}
			ap.Path = envoy.AppHealthPrefix + c.Name + "/" + p.kind
			out = append(out, ap)
			var headers []corev1.HTTPHeader
			if h := p.probe.HTTPGet; h != nil {
				headers = h.HTTPHeaders
			}
			p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: ap.Path, Port: intstr.FromInt32(envoy.DefaultHealthPort), Scheme: corev1.URISchemeHTTP, HTTPHeaders: headers,
			}}
		}
	}
	return out
}

// appProbe is what the sidecar checks for probe, if the probe can move.
func appProbe(c *corev1.Container, probe *corev1.Probe) (envoy.AppProbe, bool) {
	ap := envoy.AppProbe{
		Period:  seconds(probe.PeriodSeconds, 10),
		Timeout: seconds(probe.TimeoutSeconds, 1),
	}
	var port intstr.IntOrString
	switch h := probe.ProbeHandler; {
	case h.HTTPGet != nil && h.HTTPGet.Host == "":
		ap.Kind, ap.AppPath, port = envoy.ProbeHTTP, h.HTTPGet.Path, h.HTTPGet.Port
		if h.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			ap.Kind = envoy.ProbeHTTPS
		}
	case h.TCPSocket != nil && h.TCPSocket.Host == "":
		ap.Kind, port = envoy.ProbeTCP, h.TCPSocket.Port
	case h.GRPC != nil:
		ap.Kind, port = envoy.ProbeGRPC, intstr.FromInt32(h.GRPC.Port)
		if h.GRPC.Service != nil {
			ap.GRPCService = *h.GRPC.Service
		}
	default:
		return ap, false
	}
	n, ok := resolvePort(c, port)
	if !ok {
		return ap, false
	}
	ap.Port = n
	return ap, true
}

// resolvePort is a probe's port number: a number, or the name of one of the container's ports.
func resolvePort(c *corev1.Container, port intstr.IntOrString) (uint32, bool) {
	if port.Type == intstr.Int {
		return uint32(port.IntVal), port.IntVal > 0 && port.IntVal <= 65535
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal && p.ContainerPort > 0 && p.ContainerPort <= 65535 {
			return uint32(p.ContainerPort), true
		}
	}
	return 0, false
}

func seconds(s, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}
