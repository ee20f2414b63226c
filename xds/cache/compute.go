package cache

import "slices"

// maxMemo bounds the answers remembered between two versions.
const maxMemo = 1 << 14

// memoKey is a question whose answer at the current version is the same for every stream.
type memoKey struct {
	sub, known       *Set
	knownVersion     uint64
	delta, evenEmpty bool
	full             bool // the full list of sub (state-of-the-world LDS and CDS)
}

// compute answers req at the current version: nil if the stream holds everything it asks for.
// Called with c.mu held.
func (c *Cache) compute(req Request) *Result {
	if req.Known.Initial != nil {
		return c.fromInitial(req)
	}
	key := memoKey{sub: req.Sub, known: req.Known.Set, knownVersion: req.Known.Version, delta: req.Delta, evenEmpty: req.ReplyEvenIfEmpty}
	if res, ok := c.memo[key]; ok {
		return res
	}
	changed, gone := c.diff(req.Sub, req.Known)
	res := c.result(req.Sub, req.Delta, changed, gone, req.ReplyEvenIfEmpty)
	if len(c.memo) >= maxMemo {
		clear(c.memo)
	}
	c.memo[key] = res
	return res
}

// diff lists the resources of sub the stream that holds known lacks or holds in an older version,
// and the names of sub it holds that are gone. Called with c.mu held.
func (c *Cache) diff(sub *Set, known Known) (changed []*Resource, gone []string) {
	k := known.Set
	if k == nil {
		return c.all(sub), nil
	}
	if k == sub && known.Version == c.version {
		return nil, nil // an ACK, with nothing new since: the common case, and O(1)
	}
	entries, logged := c.log.since(known.Version)
	if k == sub && logged {
		// The same subscription: only what changed since matters.
		for name, existed := range touched(entries) {
			if !sub.Has(name) {
				continue
			}
			if r, ok := c.resources[name]; ok {
				changed = append(changed, r)
			} else if existed {
				gone = append(gone, name)
			}
		}
		return sortedByName(changed), gone
	}
	// Another subscription (or a stream older than the log): look at every name of it.
	for _, r := range c.all(sub) {
		if !k.Has(r.Name) || r.Modified > known.Version {
			changed = append(changed, r)
		}
	}
	if logged {
		for name, existed := range touched(entries) {
			if _, ok := c.resources[name]; !ok && existed && sub.Has(name) && k.Has(name) {
				gone = append(gone, name)
			}
		}
	} else if !sub.Wildcard() {
		for name := range sub.names {
			if _, ok := c.resources[name]; !ok && k.Has(name) {
				gone = append(gone, name) // may not have existed: a removal of nothing is harmless
			}
		}
	}
	if k.Wildcard() && !sub.Wildcard() {
		// A delta stream that leaves the wildcard is told the resources it no longer gets are
		// removed, as go-control-plane's LinearCache does.
		for name := range c.resources {
			if !sub.Has(name) {
				gone = append(gone, name)
			}
		}
	}
	return changed, gone // in the order of all: sorted
}

// fromInitial answers the first request of a delta stream that says which versions it holds.
func (c *Cache) fromInitial(req Request) *Result {
	var changed []*Resource
	for _, r := range c.all(req.Sub) {
		if v, ok := req.Known.Initial[r.Name]; !ok || v != r.Delta.Version {
			changed = append(changed, r)
		}
	}
	var gone []string
	for name := range req.Known.Initial {
		if _, ok := c.resources[name]; !ok || !req.Sub.Has(name) {
			gone = append(gone, name)
		}
	}
	return c.result(req.Sub, true, changed, gone, req.ReplyEvenIfEmpty)
}

// changeResult answers the watches parked on k for one change. A parked stream holds every
// resource of its subscription (else it would have been answered at once), so the answer is
// the change restricted to the subscription. Called with c.mu held.
func (c *Cache) changeResult(k parkKey, change logEntry) *Result {
	var changed []*Resource
	var gone []string
	for _, ev := range change.events {
		if !k.sub.Has(ev.name) {
			continue
		}
		if ev.kind == removed {
			gone = append(gone, ev.name)
		} else {
			changed = append(changed, c.resources[ev.name])
		}
	}
	return c.result(k.sub, k.delta, changed, gone, false)
}

// result builds the response for sub from what changed, or nil if there is nothing to send:
//   - delta: the changed resources and the removed names;
//   - state of the world, LDS and CDS: every resource of sub, if anything changed or went;
//   - state of the world, other types: the changed resources (a removal is not told).
//
// changed is sorted by name and may be shared: it is not changed.
func (c *Cache) result(sub *Set, delta bool, changed []*Resource, gone []string, evenEmpty bool) *Result {
	res := &Result{Version: c.version, Sub: sub}
	switch {
	case delta:
		if len(changed) == 0 && len(gone) == 0 && !evenEmpty {
			return nil
		}
		slices.Sort(gone)
		res.Resources, res.Removed = changed, slices.Compact(gone)
	case c.fullState:
		if len(changed) == 0 && len(gone) == 0 && !evenEmpty {
			return nil
		}
		res.Resources = c.all(sub)
	default:
		if len(changed) == 0 && !evenEmpty {
			return nil
		}
		res.Resources = changed
	}
	return res
}

// all lists the published resources of sub, sorted by name, shared between the callers at the
// current version. Called with c.mu held.
func (c *Cache) all(sub *Set) []*Resource {
	key := memoKey{sub: sub, full: true}
	if res, ok := c.memo[key]; ok {
		return res.Resources
	}
	var out []*Resource
	if sub.Wildcard() {
		out = make([]*Resource, 0, len(c.resources))
		for _, r := range c.resources {
			out = append(out, r)
		}
	} else {
		out = make([]*Resource, 0, sub.Len())
		for n := range sub.Names() {
			if r, ok := c.resources[n]; ok {
				out = append(out, r)
			}
		}
	}
	sortedByName(out)
	c.memo[key] = &Result{Resources: out}
	return out
}
