package cache

import "sync"

// Known is what a stream is known to hold of one type: every resource of Set that existed at
// Version, as of Version. The zero Known is a stream that holds nothing.
type Known struct {
	Set     *Set
	Version uint64
	// Initial are the versions a delta stream says it holds on its first request
	// (initial_resource_versions, on reconnecting); when set, Set and Version are not used.
	Initial map[string]string
}

// Request asks for the resources of Sub, for a stream that holds Known.
type Request struct {
	Sub   *Set
	Known Known
	Delta bool
	// ReplyEvenIfEmpty answers at once even if nothing changed: go-control-plane's rule is a
	// state-of-the-world request without version, or a delta wildcard subscription's first request.
	ReplyEvenIfEmpty bool
}

// Watch is a parked request: it is answered once, by the first Update that changes a resource of
// its subscription, unless it is cancelled first.
type Watch struct {
	c        *Cache
	key      parkKey
	respond  func(*Result)
	parkedAt uint64

	mu   sync.Mutex
	done bool // fired or cancelled
}

// parkKey groups the watches that get the same answer to a change.
type parkKey struct {
	sub   *Set
	delta bool
}

// Watch answers req: at once, with a non-nil Result, if the stream lacks something; otherwise it
// parks a Watch whose respond is called (once, from the goroutine of the Update) with the
// result of the first change to the subscription. respond must not block; it is never called
// after Cancel has returned.
func (c *Cache) Watch(req Request, respond func(*Result)) (*Result, *Watch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if res := c.compute(req); res != nil {
		return res, nil
	}
	w := &Watch{c: c, key: parkKey{sub: req.Sub, delta: req.Delta}, respond: respond, parkedAt: c.version}
	c.park(w)
	return nil, w
}

// ParkedAt is the cache version when the watch was parked: the stream holds every resource of
// its subscription as of that version.
func (w *Watch) ParkedAt() uint64 { return w.parkedAt }

// Cancel ends the watch. If it was still parked, it returns the cache version now and true: the
// stream holds its subscription as of that version (nothing in it changed since the watch was
// parked). Otherwise a change took the watch (its response may be on its way, or was dropped
// because of this Cancel) and it returns false.
func (w *Watch) Cancel() (uint64, bool) {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.parked[w.key]; m != nil {
		if _, ok := m[w]; ok {
			c.unpark(w)
			return c.version, true
		}
	}
	return 0, false
}

func (w *Watch) fire(res *Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	w.respond(res)
}

// park registers w under its subscription; the subscription is indexed by name when its first
// watch parks. Called with c.mu held.
func (c *Cache) park(w *Watch) {
	m := c.parked[w.key]
	if m == nil {
		m = map[*Watch]struct{}{}
		c.parked[w.key] = m
		c.index(w.key, true)
	}
	m[w] = struct{}{}
}

func (c *Cache) unpark(w *Watch) {
	m := c.parked[w.key]
	delete(m, w)
	if len(m) == 0 {
		delete(c.parked, w.key)
		c.index(w.key, false)
	}
}

// index adds the subscription of k to the name index, or removes it.
func (c *Cache) index(k parkKey, add bool) {
	if k.sub.Wildcard() {
		if add {
			c.wildcards[k] = struct{}{}
		} else {
			delete(c.wildcards, k)
		}
		return
	}
	for n := range k.sub.names {
		sets := c.byName[n]
		if add {
			if sets == nil {
				sets = map[parkKey]struct{}{}
				c.byName[n] = sets
			}
			sets[k] = struct{}{}
			continue
		}
		delete(sets, k)
		if len(sets) == 0 {
			delete(c.byName, n)
		}
	}
}

type firing struct {
	w   *Watch
	res *Result
}

// wake takes the parked watches that change answers, with their results: one result per
// subscription, shared by its watches. Called with c.mu held.
func (c *Cache) wake(change logEntry) []firing {
	affected := map[parkKey]struct{}{}
	for _, ev := range change.events {
		for k := range c.byName[ev.name] {
			affected[k] = struct{}{}
		}
	}
	for k := range c.wildcards {
		affected[k] = struct{}{}
	}
	var out []firing
	for k := range affected {
		res := c.changeResult(k, change)
		if res == nil {
			continue // e.g. only removals, which a state-of-the-world RDS or EDS response does not tell
		}
		for w := range c.parked[k] {
			out = append(out, firing{w: w, res: res})
		}
		delete(c.parked, k)
		c.index(k, false)
	}
	return out
}
