// Package cache is the xDS server's resource cache: one Cache per resource type (and, for
// listeners, per proxy flavour). It is built for many streams that each watch many resources:
//
//   - subscriptions are interned Sets, shared by the streams that ask for the same names;
//   - watches are parked per Set, and Sets are indexed by name, so a change touches only the Sets
//     that hold a changed name and the watches parked on them, never every name of every watch;
//   - what a stream was last sent is one (Set, version) pair, not a map of names, so an ACK that
//     repeats the subscription costs no work per name;
//   - resources are marshalled once, and the resource lists of responses are shared by every
//     watch that gets the same answer.
//
// See docs/xds-server.md.
package cache

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resource is one published resource, marshalled once.
type Resource struct {
	Name string
	Msg  types.Resource
	// Any is the serialized resource, shared by every response that carries it.
	Any *anypb.Any
	// Delta is the resource as delta responses carry it, with its hash-based version.
	Delta *discovery.Resource
	// Modified is the cache version that last wrote the resource; Created the one that published
	// it when it was not published before.
	Modified, Created uint64
}

// Cache holds the resources of one type and the watches on them.
type Cache struct {
	typeURL string
	// fullState: state-of-the-world responses carry every subscribed resource (LDS, CDS).
	fullState bool

	mu        sync.Mutex
	version   uint64
	resources map[string]*Resource
	log       changeLog

	// parked are the watches waiting for a change, by Set; byName indexes the Sets that have
	// parked watches by each of their names, and wildcards lists those that are wildcard.
	parked    map[parkKey]map[*Watch]struct{}
	byName    map[string]map[parkKey]struct{}
	wildcards map[parkKey]struct{}

	// memo shares the results computed at the current version between watches that ask the same.
	memo map[memoKey]*Result
}

// New returns an empty cache for typeURL; fullState as go-control-plane's
// ResourceRequiresFullStateInSotw says for the type.
func New(typeURL string, fullState bool) *Cache {
	return &Cache{
		typeURL:   typeURL,
		fullState: fullState,
		resources: map[string]*Resource{},
		parked:    map[parkKey]map[*Watch]struct{}{},
		byName:    map[string]map[parkKey]struct{}{},
		wildcards: map[parkKey]struct{}{},
		memo:      map[memoKey]*Result{},
	}
}

// TypeURL is the type the cache serves.
func (c *Cache) TypeURL() string { return c.typeURL }

// Version is the cache's version: the number of Update calls that changed something.
func (c *Cache) Version() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Get returns the resource published under name.
func (c *Cache) Get(name string) (types.Resource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.resources[name]
	if !ok {
		return nil, false
	}
	return r.Msg, true
}

// Created is the version that published the resource name, if it is published.
func (c *Cache) Created(name string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.resources[name]
	if !ok {
		return 0, false
	}
	return r.Created, true
}

// Len is the number of resources.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.resources)
}

// Update writes upsert and removes the names of remove (names not published are ignored) as one
// new version, and answers the parked watches whose subscription holds a changed name. Like
// go-control-plane's LinearCache, every call with something in upsert or remove is a new version
// (the caller can count on it); a call with neither does nothing. It returns the version. If a
// resource cannot be marshalled, nothing changes.
func (c *Cache) Update(upsert map[string]types.Resource, remove []string) (uint64, error) {
	return c.UpdateThen(upsert, remove, nil)
}

// UpdateThen is Update, calling before (if set) with the new version before any watch is
// answered: so that the caller can record what the version carries before a proxy ACKs it.
func (c *Cache) UpdateThen(upsert map[string]types.Resource, remove []string, before func(version uint64)) (uint64, error) {
	entries := make(map[string]*Resource, len(upsert))
	for name, msg := range upsert {
		r, err := c.newResource(name, msg)
		if err != nil {
			return 0, err
		}
		entries[name] = r
	}

	c.mu.Lock()
	if len(entries) == 0 && len(remove) == 0 {
		v := c.version
		c.mu.Unlock()
		return v, nil
	}
	c.version++
	v := c.version
	change := logEntry{version: v}
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		r := entries[name]
		r.Modified, r.Created = v, v
		old, existed := c.resources[name]
		if existed {
			r.Created = old.Created
		}
		c.resources[name] = r
		change.events = append(change.events, event{name: name, kind: kindOf(existed)})
	}
	for _, name := range remove {
		if _, ok := c.resources[name]; ok {
			delete(c.resources, name)
			change.events = append(change.events, event{name: name, kind: removed})
		}
	}
	c.log.add(change)
	clear(c.memo)
	if before != nil {
		before(v)
	}
	fire := c.wake(change)
	c.mu.Unlock()

	for _, f := range fire {
		f.w.fire(f.res)
	}
	return v, nil
}

func (c *Cache) newResource(name string, msg types.Resource) (*Resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s %q: %w", c.typeURL, name, err)
	}
	sum := sha256.Sum256(b)
	a := &anypb.Any{TypeUrl: c.typeURL, Value: b}
	return &Resource{
		Name:  name,
		Msg:   msg,
		Any:   a,
		Delta: &discovery.Resource{Name: name, Version: hex.EncodeToString(sum[:]), Resource: a},
	}, nil
}

// sortedByName sorts resources by name, so that responses are deterministic.
func sortedByName(rs []*Resource) []*Resource {
	slices.SortFunc(rs, func(a, b *Resource) int { return cmp.Compare(a.Name, b.Name) })
	return rs
}
