// Command demoapp is the mesh's demo workload as a process: a gRPC grpc.testing.TestService that
// says which pod and version answered, fails a share of calls and adds latency on demand, and
// exposes gRPC's own metrics for Prometheus. The sandbox runs one per demo pod, on the pod's IP.
//
// Configuration comes from the environment, as a container's does:
//
//	POD_NAME       answered as SimpleResponse.hostname
//	VERSION        answered as SimpleResponse.server_id
//	ERROR_PERCENT  0-100: that share of calls fails with UNAVAILABLE
//	LATENCY        added to every call, such as 20ms
//	POD_IP         the address to serve on (default 127.0.0.1)
//	PORT           gRPC port (default 8080); METRICS_PORT: /metrics port (default 9090)
//	GRPC_XDS_BOOTSTRAP  when set, serve as a proxyless gRPC xDS server of that control plane
//
// `demoapp call [-n N] [-timeout D] TARGET` is its client instead: it makes N calls to TARGET
// (xds:///greeter.demo.svc.cluster.local:8080 as a proxyless gRPC client of the control plane
// GRPC_XDS_BOOTSTRAP names), prints who answered each, and exits 0 only if all were answered.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sluice-mesh/sluice/internal/demoapp"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "call" {
		os.Exit(call(os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demoapp:", err)
		os.Exit(1)
	}
}

// call is `demoapp call`: exit code 0 when every call was answered, 1 when some were not, 2 for
// bad usage.
func call(args []string) int {
	fs := flag.NewFlagSet("demoapp call", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many calls to make, one after the other")
	timeout := fs.Duration("timeout", 10*time.Second, "how long each call may take (the first includes connecting)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: demoapp call [-n N] [-timeout D] TARGET   (such as xds:///greeter.demo.svc.cluster.local:8080)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *n < 1 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	answered, err := demoapp.Call(ctx, fs.Arg(0), *n, *timeout, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demoapp call:", err)
		return 1
	}
	if answered < *n {
		return 1
	}
	return 0
}

func run() error {
	opts, err := optionsFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := demoapp.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Printf("demoapp %s (%s) serving gRPC on %s, metrics on %s, xDS %v\n", opts.Hostname, opts.Version, srv.Addr(), srv.MetricsAddr(), opts.XDS)
	<-ctx.Done()
	return srv.Stop()
}

func optionsFromEnv(getenv func(string) string) (demoapp.Options, error) {
	opts := demoapp.Options{Hostname: getenv("POD_NAME"), Version: getenv("VERSION"), XDS: getenv("GRPC_XDS_BOOTSTRAP") != ""}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if v := getenv("ERROR_PERCENT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return opts, fmt.Errorf("ERROR_PERCENT=%q: want a whole number 0-100", v)
		}
		opts.ErrorPercent = n
	}
	if v := getenv("LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return opts, fmt.Errorf("LATENCY=%q: want a duration such as 20ms", v)
		}
		opts.Latency = d
	}
	ip := getenv("POD_IP")
	if ip == "" {
		ip = "127.0.0.1"
	}
	opts.GRPCAddr = net.JoinHostPort(ip, orDefault(getenv("PORT"), "8080"))
	opts.MetricsAddr = net.JoinHostPort(ip, orDefault(getenv("METRICS_PORT"), "9090"))
	return opts, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
