package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// ui prints the demo's progress: colours on a terminal, plain text otherwise.
type ui struct {
	out   io.Writer
	color bool
	start time.Time
}

func newUI() *ui {
	fi, err := os.Stdout.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	return &ui{out: os.Stdout, color: tty, start: time.Now()}
}

const (
	bold   = "1"
	dim    = "2"
	red    = "31"
	green  = "32"
	yellow = "33"
	blue   = "34"
	cyan   = "36"
)

func (u *ui) paint(code, s string) string {
	if !u.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (u *ui) title(s string) {
	fmt.Fprintf(u.out, "\n%s\n", u.paint(bold, "== "+s))
}

func (u *ui) say(format string, args ...any) {
	fmt.Fprintf(u.out, "%s %s\n", u.paint(dim, u.clock()), fmt.Sprintf(format, args...))
}

func (u *ui) ok(format string, args ...any) {
	fmt.Fprintf(u.out, "%s %s %s\n", u.paint(dim, u.clock()), u.paint(green, "✓"), fmt.Sprintf(format, args...))
}

func (u *ui) bad(format string, args ...any) {
	fmt.Fprintf(u.out, "%s %s %s\n", u.paint(dim, u.clock()), u.paint(red, "✗"), fmt.Sprintf(format, args...))
}

func (u *ui) clock() string {
	d := time.Since(u.start).Round(time.Second)
	return fmt.Sprintf("[%02d:%02d]", int(d.Minutes()), int(d.Seconds())%60)
}

func (u *ui) phase(p string) string {
	switch strings.TrimSpace(p) {
	case "Promoted":
		return u.paint(green, p)
	case "RolledBack", "Failed":
		return u.paint(red, p)
	case "Paused":
		return u.paint(yellow, p)
	default:
		return u.paint(cyan, p)
	}
}

// traffic renders one second of calls by version: share, success rate, p99.
func (u *ui) traffic(figs map[string]versionFigures) string {
	total := 0
	versions := make([]string, 0, len(figs))
	for v, f := range figs {
		total += f.Calls
		versions = append(versions, v)
	}
	sort.Strings(versions)
	if total == 0 {
		return ""
	}
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		f := figs[v]
		okRate := 100 * float64(f.Calls-f.Failures) / float64(f.Calls)
		rate := fmt.Sprintf("%5.1f%% ok", okRate)
		switch {
		case okRate < 95:
			rate = u.paint(red, rate)
		case okRate < 100:
			rate = u.paint(yellow, rate)
		}
		parts = append(parts, fmt.Sprintf("%s %3.0f%% of calls, %s, p99 %s", u.paint(blue, v), 100*float64(f.Calls)/float64(total), rate,
			f.P99.Round(100*time.Microsecond)))
	}
	return strings.Join(parts, " | ")
}
