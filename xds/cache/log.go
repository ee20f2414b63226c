package cache

import "sort"

// maxLogVersions bounds the change log. A stream whose last known version is older than the log
// has its whole subscription compared, resource by resource, and may be told of removals of
// resources it did not have (harmless).
const maxLogVersions = 1024

type eventKind uint8

const (
	created eventKind = iota // upserted, not published before
	updated                  // upserted over a published resource
	removed
)

func kindOf(existed bool) eventKind {
	if existed {
		return updated
	}
	return created
}

type event struct {
	name string
	kind eventKind
}

// logEntry is what one version changed.
type logEntry struct {
	version uint64
	events  []event
}

// changeLog keeps the changes of the last maxLogVersions versions, oldest first.
type changeLog struct {
	entries []logEntry
}

func (l *changeLog) add(e logEntry) {
	if len(l.entries) >= maxLogVersions {
		l.entries = append(l.entries[:0], l.entries[len(l.entries)-maxLogVersions+1:]...)
	}
	l.entries = append(l.entries, e)
}

// since yields the changes after version from, oldest first, and reports whether the log reaches
// back that far. Every version from from+1 on is in the log (only versions that changed something
// are logged, and every version is).
func (l *changeLog) since(from uint64) ([]logEntry, bool) {
	i := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].version > from })
	if i == 0 && len(l.entries) > 0 && l.entries[0].version > from+1 {
		return nil, false
	}
	return l.entries[i:], true
}

// touched is what the log says about the names a range of changes touched: for each, whether it
// existed before the range (its first event was not a creation).
func touched(entries []logEntry) map[string]bool {
	out := map[string]bool{}
	for _, e := range entries {
		for _, ev := range e.events {
			if _, seen := out[ev.name]; !seen {
				out[ev.name] = ev.kind != created
			}
		}
	}
	return out
}
