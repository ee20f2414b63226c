// Command bench-xds measures how fast the embedded xDS server (xds/server) gets one route change to
// a fleet of proxyless gRPC proxies, and what the fleet costs it: `make bench-xds`, described in
// docs/benchmarks.md.
//
// It runs as three kinds of process. The coordinator (no -role) runs one server process per
// scenario and prints the table. A server process translates and publishes the mesh, serves xDS
// on loopback and starts a client process that runs the simulated proxies; keeping the proxies
// out of the server's process keeps its heap and CPU figures the server's own.
package main

import (
	"fmt"
	"os"
)

func main() {
	c, err := parseFlags(os.Args[1:])
	if err == nil {
		switch c.role {
		case "":
			err = coordinate(c)
		case "server":
			err = runServer(c)
		case "clients":
			err = runClients(c, c.addr)
		default:
			err = fmt.Errorf("unknown -role %q", c.role)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-xds: %s: %v\n", roleName(c.role), err)
		os.Exit(1)
	}
}

func roleName(r string) string {
	if r == "" {
		return "coordinator"
	}
	return r
}
