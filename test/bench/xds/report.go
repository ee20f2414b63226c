package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
)

// The targets, on a 2-core machine.
const (
	targetP99          = 0.250     // seconds, from Publish to the last proxy's ACK of the change
	targetHeapPerProxy = 100 << 10 // bytes of server heap per connected proxy
)

// summary is a scenario's figures: the median over its pushes of each one.
type summary struct {
	first, p50, p99, maxS float64
	translate             float64
	bytes, responses      float64
	cpu, clientCPU        float64
	otherCPU              float64
	publish               float64
	convMean              float64
	heapPerProxy          float64
	stackPerProxy         float64
	goroutinesPerProxy    float64
	initialBytesPerProxy  float64
	allAcked              bool
}

func summarise(r scenarioResult) summary {
	col := func(f func(pushResult) float64) float64 {
		v := make([]float64, len(r.Pushes))
		for i, p := range r.Pushes {
			v[i] = f(p)
		}
		return median(v)
	}
	n := float64(r.Proxies)
	s := summary{
		first:     col(func(p pushResult) float64 { return p.Min }),
		translate: col(func(p pushResult) float64 { return p.TranslateSeconds }),
		p50:       col(func(p pushResult) float64 { return p.P50 }),
		p99:       col(func(p pushResult) float64 { return p.P99 }),
		maxS:      col(func(p pushResult) float64 { return p.Max }),
		bytes:     col(func(p pushResult) float64 { return float64(p.Bytes) }),
		responses: col(func(p pushResult) float64 { return float64(p.Responses) }),
		cpu:       col(func(p pushResult) float64 { return p.CPUSeconds }),
		clientCPU: col(func(p pushResult) float64 { return p.ClientCPU }),
		otherCPU:  col(func(p pushResult) float64 { return p.OtherCPU }),
		publish:   col(func(p pushResult) float64 { return p.PublishSeconds }),
		convMean: col(func(p pushResult) float64 {
			return p.Convergence.Sum / float64(max(p.Convergence.Count, 1))
		}),
		heapPerProxy:         (float64(r.WithProxies.HeapInuse) - float64(r.Alone.HeapInuse)) / n,
		stackPerProxy:        (float64(r.WithProxies.StackInuse) - float64(r.Alone.StackInuse)) / n,
		goroutinesPerProxy:   float64(r.WithProxies.Goroutines-r.Alone.Goroutines) / n,
		initialBytesPerProxy: float64(r.Initial.Bytes) / n,
		allAcked:             true,
	}
	for _, p := range r.Pushes {
		s.allAcked = s.allAcked && p.Acked == r.Proxies
	}
	return s
}

func printReport(w io.Writer, c config, results []scenarioResult) {
	fmt.Fprintf(w, "\nxDS benchmark: %d services (subsets \"\", v1, v2), %d proxyless gRPC proxies over %d gRPC connections, "+
		"%d pushes per scenario (median shown)\n", c.services, c.proxies, c.conns, c.pushes)
	fmt.Fprintf(w, "machine: %d CPUs, GOMAXPROCS %d, %s %s/%s\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "watch\tmode\tfirst ACK\tACK p50\tACK p99\tACK max\tp99<=250ms\tchange bytes\tper proxy\tresponses\tserver CPU/push\tother CPU\theap/proxy\t<=100KiB\tstack/proxy\tinitial/proxy\tinitial fetch\t")
	for _, r := range results {
		s := summarise(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.3fs\t%.3fs\t%s\t%s\t%s\t%s\t%.1fs\t\n",
			watchName(r), r.Mode, ms(s.first), ms(s.p50), ms(s.p99), ms(s.maxS), mark(s.p99 <= targetP99 && s.allAcked),
			size(s.bytes), size(s.bytes/float64(r.Proxies)), s.responses, s.cpu, s.otherCPU,
			size(s.heapPerProxy), mark(s.heapPerProxy <= targetHeapPerProxy), size(s.stackPerProxy),
			size(s.initialBytesPerProxy), r.Initial.Seconds)
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nper push (server CPU: the server process from Publish to the last ACK; client CPU: the client process, same span;")
	fmt.Fprintln(w, "other CPU: every other process of the machine, same span, from /proc/stat: the benchmark does not have the machine to itself;")
	fmt.Fprintln(w, "convergence: sluice_xds_convergence_seconds{type=\"rds\"} observations and their mean)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "watch\tmode\tpush\tv1/v2\tACKed\tfirst\tp50\tp99\tmax\tbytes\tresponses\ttranslate\tPublish\tserver CPU\tclient CPU\tother CPU\tconvergence\t")
	for _, r := range results {
		for i, p := range r.Pushes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%.3fs\t%.3fs\t%.3fs\t%d, mean %s\t\n",
				watchName(r), r.Mode, i+1, p.V1Weight, 100-p.V1Weight, p.Acked, ms(p.Min), ms(p.P50), ms(p.P99), ms(p.Max),
				size(float64(p.Bytes)), p.Responses, ms(p.TranslateSeconds), ms(p.PublishSeconds), p.CPUSeconds, p.ClientCPU, p.OtherCPU,
				p.Convergence.Count, ms(p.Convergence.Sum/float64(max(p.Convergence.Count, 1))))
		}
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nserver process memory (after GC) and initial fetch")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "watch\tmode\theap alone\theap with proxies\tstacks alone\tstacks with proxies\tgoroutines/proxy\tpeak RSS server\tpeak RSS clients\tinitial bytes\tinitial responses\ttranslate\t")
	for _, r := range results {
		s := summarise(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%d\t%s\t\n", watchName(r), r.Mode,
			size(float64(r.Alone.HeapInuse)), size(float64(r.WithProxies.HeapInuse)),
			size(float64(r.Alone.StackInuse)), size(float64(r.WithProxies.StackInuse)), s.goroutinesPerProxy,
			size(float64(r.ServerMaxRSS)), size(float64(r.ClientMaxRSS)),
			size(float64(r.Initial.Bytes)), r.Initial.Responses, ms(r.TranslateSeconds))
	}
	_ = tw.Flush()
}

func watchName(r scenarioResult) string {
	if r.Watch >= r.Services {
		return fmt.Sprintf("all %d", r.Services)
	}
	return fmt.Sprint(r.Watch)
}

func ms(s float64) string { return fmt.Sprintf("%.1fms", s*1e3) }

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// size prints a size with a binary unit.
func size(b float64) string {
	neg := b < 0
	if neg {
		b = -b
	}
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f %s", b, units[i])
	if i == 0 {
		s = fmt.Sprintf("%.0f B", b)
	}
	if neg {
		s = "-" + s
	}
	return strings.TrimSpace(s)
}
