package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// config is one scenario, or (with the list flags) every scenario of a run.
type config struct {
	role string
	addr string // clients role: the server's address

	services int
	proxies  int
	conns    int
	pushes   int
	// parallel bounds the proxies fetching their initial configuration at once, so that 2000
	// proxies starting together do not hold 2000 initial responses in memory at the same time.
	parallel int

	// watch and mode pick one scenario (server and clients roles); watchList and modeList list
	// the scenarios the coordinator runs.
	watch     int
	mode      string
	watchList string
	modeList  string

	initialTimeout time.Duration
	pushTimeout    time.Duration
	profileDir     string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench-xds", flag.ContinueOnError)
	fs.StringVar(&c.role, "role", "", "internal: server or clients (the coordinator starts them)")
	fs.StringVar(&c.addr, "addr", "", "internal: the xDS server's address, for the clients role")
	fs.IntVar(&c.services, "services", 1000, "services in the mesh, each with subsets \"\", v1 and v2")
	fs.IntVar(&c.proxies, "proxies", 2000, "simulated proxyless gRPC proxies, one ADS stream each")
	fs.IntVar(&c.conns, "conns", 20, "gRPC connections the proxies' streams share")
	fs.IntVar(&c.pushes, "pushes", 5, "weight changes per scenario; figures are the median over them")
	fs.IntVar(&c.parallel, "parallel", 200, "proxies fetching their initial configuration at once")
	fs.StringVar(&c.watchList, "watch", "1000,10", "services each proxy watches, one scenario per value (values >= -services mean all)")
	fs.StringVar(&c.modeList, "modes", "sotw,delta", "xDS variants, one scenario per value: sotw, delta")
	fs.StringVar(&c.mode, "mode", "", "internal: the variant of this scenario")
	fs.DurationVar(&c.initialTimeout, "initial-timeout", 10*time.Minute, "bound on every proxy fetching and ACKing its initial configuration")
	fs.DurationVar(&c.pushTimeout, "push-timeout", time.Minute, "bound on every proxy ACKing one change")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write the server's CPU profile of the pushes and heap profile with the proxies connected here")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.services < 2 || c.proxies < 1 || c.conns < 1 || c.pushes < 1 || c.parallel < 1 {
		return c, fmt.Errorf("need -services >= 2 and -proxies, -conns, -pushes, -parallel >= 1")
	}
	if c.pushes > (initialWeight-10)/10 {
		return c, fmt.Errorf("-pushes is at most %d: each push lowers v1's weight by 10", (initialWeight-10)/10)
	}
	if c.role != "" {
		w, err := strconv.Atoi(c.watchList)
		if err != nil {
			return c, fmt.Errorf("-watch of a %s process is one number: %w", c.role, err)
		}
		c.watch = min(w, c.services)
	}
	return c, nil
}

// scenarios lists the (watch, mode) pairs the coordinator runs.
func (c config) scenarios() ([]config, error) {
	var out []config
	for _, w := range strings.Split(c.watchList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-watch: %q is not a positive number", w)
		}
		for _, m := range strings.Split(c.modeList, ",") {
			m = strings.TrimSpace(m)
			if m != "sotw" && m != "delta" {
				return nil, fmt.Errorf("-modes: %q is neither sotw nor delta", m)
			}
			s := c
			s.watch, s.mode = min(n, c.services), m
			out = append(out, s)
		}
	}
	return out, nil
}

// args are the flags that start a process of role for this scenario.
func (c config) args(role string) []string {
	return []string{
		"-role=" + role,
		"-services=" + strconv.Itoa(c.services),
		"-proxies=" + strconv.Itoa(c.proxies),
		"-conns=" + strconv.Itoa(c.conns),
		"-pushes=" + strconv.Itoa(c.pushes),
		"-parallel=" + strconv.Itoa(c.parallel),
		"-watch=" + strconv.Itoa(c.watch),
		"-mode=" + c.mode,
		"-initial-timeout=" + c.initialTimeout.String(),
		"-push-timeout=" + c.pushTimeout.String(),
		"-profile-dir=" + c.profileDir,
	}
}

// name is how the scenario appears in logs and file names, e.g. "watch10-delta".
func (c config) name() string { return fmt.Sprintf("watch%d-%s", c.watch, c.mode) }
