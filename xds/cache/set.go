package cache

import (
	"hash/maphash"
	"iter"
	"maps"
	"runtime"
	"sync"
	"weak"
)

// Set is a subscription: the resource names a stream asks for of one type, and whether it asks for
// every resource (wildcard). Sets are immutable and interned by content (Sets), so the streams that
// subscribe to the same names share one Set, and a stream's memory does not grow with its names.
type Set struct {
	wildcard bool
	names    map[string]struct{}
	hash     uint64
	keys     *setKeys
}

// Wildcard reports whether the set asks for every resource.
func (s *Set) Wildcard() bool { return s != nil && s.wildcard }

// Has reports whether the set asks for name: named in it, or wildcard.
func (s *Set) Has(name string) bool {
	if s == nil {
		return false
	}
	if s.wildcard {
		return true
	}
	_, ok := s.names[name]
	return ok
}

// Named reports whether name is in the set by name (a wildcard set may name resources too).
func (s *Set) Named(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.names[name]
	return ok
}

// Len is the number of names in the set (not counting the wildcard).
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.names)
}

// Names yields the names of the set, in no order.
func (s *Set) Names() iter.Seq[string] {
	return func(yield func(string) bool) {
		if s == nil {
			return
		}
		for n := range s.names {
			if !yield(n) {
				return
			}
		}
	}
}

// setKeys are the table keys a Set is registered under, kept apart from the Set so that the
// cleanup that unregisters it does not keep it alive.
type setKeys struct {
	content uint64
	lists   []uint64
}

// Sets interns Sets. A Set lives as long as something refers to it; the table holds weak pointers.
type Sets struct {
	seed maphash.Seed
	// intern, if set, returns a shared copy of a name (the published one), so that a Set does not
	// keep the strings of the request it was built from.
	intern func(string) string

	mu        sync.Mutex
	byContent map[uint64][]weak.Pointer[Set]
	byList    map[uint64]weak.Pointer[Set] // list fingerprint → set
}

// NewSets returns an empty table. intern may be nil.
func NewSets(intern func(string) string) *Sets {
	return &Sets{
		seed:      maphash.MakeSeed(),
		intern:    intern,
		byContent: map[uint64][]weak.Pointer[Set]{},
		byList:    map[uint64]weak.Pointer[Set]{},
	}
}

const wildcardName = "*"

// FromList returns the Set a state-of-the-world request names: its names, "*" meaning wildcard;
// legacyWildcard makes an empty list mean wildcard too. A list seen before (by any stream) is
// found by its fingerprint without building anything: that is what every ACK does.
func (t *Sets) FromList(names []string, legacyWildcard bool) *Set {
	lh := t.listHash(names, legacyWildcard)
	t.mu.Lock()
	if wp, ok := t.byList[lh]; ok {
		if s := wp.Value(); s != nil {
			t.mu.Unlock()
			return s
		}
	}
	t.mu.Unlock()

	s := &Set{names: make(map[string]struct{}, len(names)), wildcard: legacyWildcard && len(names) == 0}
	for _, n := range names {
		if n == wildcardName {
			s.wildcard = true
			continue
		}
		s.names[t.name(n)] = struct{}{}
	}
	return t.add(s, lh, true)
}

// Apply returns from with the names of subscribe added and those of unsubscribe removed, as a
// delta request changes a subscription ("*" subscribes to or unsubscribes from the wildcard).
func (t *Sets) Apply(from *Set, subscribe, unsubscribe []string) *Set {
	s := &Set{names: make(map[string]struct{}, from.Len()+len(subscribe)), wildcard: from.Wildcard()}
	if from != nil {
		maps.Copy(s.names, from.names)
	}
	for _, n := range subscribe {
		if n == wildcardName {
			s.wildcard = true
			continue
		}
		s.names[t.name(n)] = struct{}{}
	}
	for _, n := range unsubscribe {
		if n == wildcardName {
			s.wildcard = false
			continue
		}
		delete(s.names, n)
	}
	return t.add(s, 0, false)
}

// Of returns the set of names, for tests and callers that have a set in hand.
func (t *Sets) Of(wildcard bool, names ...string) *Set {
	s := &Set{names: make(map[string]struct{}, len(names)), wildcard: wildcard}
	for _, n := range names {
		s.names[t.name(n)] = struct{}{}
	}
	return t.add(s, 0, false)
}

func (t *Sets) name(n string) string {
	if t.intern != nil {
		return t.intern(n)
	}
	return n
}

// add interns s, built just now: the equal Set already in the table, or s. If withList, the
// list fingerprint lh finds it from now on.
func (t *Sets) add(s *Set, lh uint64, withList bool) *Set {
	s.hash = t.contentHash(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, wp := range t.byContent[s.hash] {
		if o := wp.Value(); o != nil && equal(o, s) {
			if withList {
				t.byList[lh] = wp
				o.keys.lists = append(o.keys.lists, lh)
			}
			return o
		}
	}
	s.keys = &setKeys{content: s.hash}
	wp := weak.Make(s)
	t.byContent[s.hash] = append(t.byContent[s.hash], wp)
	if withList {
		t.byList[lh] = wp
		s.keys.lists = append(s.keys.lists, lh)
	}
	runtime.AddCleanup(s, t.forget, s.keys)
	return s
}

// forget drops the table entries of a Set that is gone.
func (t *Sets) forget(k *setKeys) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, lh := range k.lists {
		if wp, ok := t.byList[lh]; ok && wp.Value() == nil {
			delete(t.byList, lh)
		}
	}
	live := t.byContent[k.content][:0]
	for _, wp := range t.byContent[k.content] {
		if wp.Value() != nil {
			live = append(live, wp)
		}
	}
	if len(live) == 0 {
		delete(t.byContent, k.content)
	} else {
		t.byContent[k.content] = live
	}
}

// Len is the number of live sets in the table, for tests.
func (t *Sets) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, wps := range t.byContent {
		for _, wp := range wps {
			if wp.Value() != nil {
				n++
			}
		}
	}
	return n
}

func equal(a, b *Set) bool {
	if a.wildcard != b.wildcard || len(a.names) != len(b.names) {
		return false
	}
	for n := range a.names {
		if _, ok := b.names[n]; !ok {
			return false
		}
	}
	return true
}

// contentHash does not depend on the order of the names.
func (t *Sets) contentHash(s *Set) uint64 {
	var sum uint64
	for n := range s.names {
		sum += maphash.String(t.seed, n)
	}
	if s.wildcard {
		sum = ^sum
	}
	return sum
}

// listHash is the fingerprint of a request's list, in order.
func (t *Sets) listHash(names []string, legacyWildcard bool) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	if legacyWildcard {
		_ = h.WriteByte(1)
	}
	var n [8]byte
	for _, name := range names {
		l := uint64(len(name))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(name)
	}
	return h.Sum64()
}
