package rolloutview

import (
	"fmt"
	"sort"
	"time"
)

// ANSI colour codes.
const (
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
)

func (p *printer) paint(code, s string) string {
	if !p.o.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// phase paints a phase: green when promoted, red when rolled back or failed, yellow when paused.
func (p *printer) phase(ph string) string {
	switch ph {
	case "Promoted":
		return p.paint(green, ph)
	case "RolledBack", "Failed":
		return p.paint(red, ph)
	case "Paused":
		return p.paint(yellow, ph)
	}
	return p.paint(cyan, ph)
}

// ago is a past time relative to now: "3m12s ago".
func (p *printer) ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := p.now.Sub(t)
	if d < 0 {
		return "in " + short(-d)
	}
	return short(d) + " ago"
}

// until is a future time relative to now: "in 20s" (or "due" once past).
func (p *printer) until(t time.Time) string {
	d := t.Sub(p.now)
	if d <= 0 {
		return "due"
	}
	return "in " + short(d)
}

// short prints a duration in whole seconds, at most two units: 45s, 3m12s, 2h5m, 3d4h.
func short(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

// newest returns at most n events, the newest last; ties keep a fixed order (reason, message).
func newest(events []Event, n int) []Event {
	sorted := append([]Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Message < b.Message
	})
	if len(sorted) > n {
		sorted = sorted[len(sorted)-n:]
	}
	return sorted
}
