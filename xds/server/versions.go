package server

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// versionHistorySize is how many recent versions of each cache the history keeps. An ACK of an
// older version (a proxy that lags by more than this many pushes) is not timed.
const versionHistorySize = 256

// versionRecord is one cache version: when the change it carries was triggered and when it was
// written to the cache.
type versionRecord struct {
	version   uint64
	trigger   time.Time
	published time.Time
}

// versionHistory keeps the recent versions of every cache. It has its own lock: the stream
// callbacks read it while Publish may hold pubMu for a long time (the warm wait).
type versionHistory struct {
	mu    sync.Mutex
	size  int
	byKey map[string][]versionRecord // ascending versions
}

func newVersionHistory(size int) *versionHistory {
	return &versionHistory{size: size, byKey: map[string][]versionRecord{}}
}

func (h *versionHistory) add(key string, r versionRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	recs := h.byKey[key]
	if len(recs) >= h.size {
		recs = slices.Delete(recs, 0, len(recs)-h.size+1)
	}
	h.byKey[key] = append(recs, r)
}

func (h *versionHistory) lookup(key string, version uint64) (versionRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	recs := h.byKey[key]
	i := sort.Search(len(recs), func(i int) bool { return recs[i].version >= version })
	if i < len(recs) && recs[i].version == version {
		return recs[i], true
	}
	return versionRecord{}, false
}
