package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// cpuSeconds is the user plus system CPU time of this process so far (its every thread; not its
// children).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // only EINVAL/EFAULT, which these arguments cannot cause
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// selfMaxRSS is this process's peak resident set so far.
func selfMaxRSS() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // as in cpuSeconds
	}
	return uint64(ru.Maxrss) << 10 // KiB on Linux
}

// machineCPUSeconds is the CPU time every process of the machine has spent since boot, from the
// first line of /proc/stat (user, nice, system, irq, softirq and steal; guest time is in user).
// The benchmark shares the machine; this shows how much of it others took during a push.
func machineCPUSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += float64(v)
	}
	const userHZ = 100 // USER_HZ, fixed at 100 on Linux
	return ticks / userHZ, nil
}

// memory is the live heap and the goroutine stacks, after two collections so that only what is
// reachable is counted.
type memory struct {
	HeapInuse  uint64 `json:"heapInuse"`
	StackInuse uint64 `json:"stackInuse"`
	Goroutines int    `json:"goroutines"`
}

func measureMemory() memory {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
}

// percentile is the nearest-rank percentile q (0 < q <= 1) of sorted values.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencyStats sorts the ACK times of one push, in seconds from t0.
func latencyStats(acks []ackRecord, t0 int64) (minS, p50, p99, maxS float64) {
	lat := make([]float64, len(acks))
	for i, a := range acks {
		lat[i] = time.Duration(a.at - t0).Seconds()
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, 0, 0, 0 // nobody ACKed; the JSON between the processes has no NaN
	}
	return lat[0], percentile(lat, 0.50), percentile(lat, 0.99), lat[len(lat)-1]
}

// median of values; the middle one, or the mean of the two middle ones.
func median(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(values))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// histogram is the count and sum of one histogram series of a registry.
type histogram struct {
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
}

func readHistogram(g prometheus.Gatherer, name string, labels map[string]string) histogram {
	mfs, err := g.Gather()
	if err != nil {
		return histogram{}
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return histogram{Count: m.GetHistogram().GetSampleCount(), Sum: m.GetHistogram().GetSampleSum()}
		}
	}
	return histogram{}
}
