package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// coordinate runs every scenario in a fresh server process, one after the other, and prints the
// figures.
func coordinate(c config) error {
	scenarios, err := c.scenarios()
	if err != nil {
		return err
	}
	if c.profileDir != "" {
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var results []scenarioResult
	for _, s := range scenarios {
		logf("%s: %d services, %d proxies over %d connections, %d pushes", s.name(), s.services, s.proxies, s.conns, s.pushes)
		r, err := runScenario(self, s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name(), err)
		}
		results = append(results, *r)
	}
	printReport(os.Stdout, c, results)
	return nil
}

func runScenario(self string, s config) (*scenarioResult, error) {
	// A bound on the whole scenario, on top of the bounds of each of its waits.
	limit := s.initialTimeout + time.Duration(s.pushes)*(s.pushTimeout+2*time.Minute) + 5*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, s.args("server")...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("server process: %w", err)
	}
	var r scenarioResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("reading the server process's result: %w", err)
	}
	return &r, nil
}
