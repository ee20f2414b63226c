package demoapp

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats/opentelemetry"
)

// metrics is one server's gRPC OpenTelemetry instrumentation and its Prometheus endpoint. Each
// server has its own registry and MeterProvider, so many servers in one process do not mix their
// series.
type metrics struct {
	provider *sdkmetric.MeterProvider
	handler  http.Handler
}

func newMetrics(hostname, version string) (*metrics, error) {
	reg := prometheus.NewRegistry()
	// The built-in analysis queries depend on these names (grpc_server_call_duration_seconds_count
	// and so on), so pin the translation rather than follow the exporter's default.
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the Prometheus exporter: %w", err)
	}
	// The resource shows as the target_info series; the scrape's own labels identify the pod.
	res := resource.NewSchemaless(
		attribute.String("service.name", "demoapp"),
		attribute.String("service.version", version),
		attribute.String("service.instance.id", hostname),
	)
	return &metrics{
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res)),
		handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// serverOption instruments a gRPC server with gRPC's own OpenTelemetry plugin: the
// grpc.server.call.* metrics of gRFC A66, the ones a proxyless mesh server exposes.
func (m *metrics) serverOption() grpc.ServerOption {
	return opentelemetry.ServerOption(opentelemetry.Options{
		MetricsOptions: opentelemetry.MetricsOptions{MeterProvider: m.provider},
	})
}

func (m *metrics) shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }
