package cache

import (
	"slices"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Result is the content of one response: shared by every watch that gets the same answer, so
// its slices must not be changed.
type Result struct {
	// Version is the cache version the result was computed at; with Sub, what a stream knows once
	// it has applied the result (every resource of Sub as of Version).
	Version uint64
	Sub     *Set
	// Resources are the resources to send (sorted by name); Removed the names a delta response
	// reports removed (sorted).
	Resources []*Resource
	Removed   []string

	anysOnce  sync.Once
	anys      []*anypb.Any
	deltaOnce sync.Once
	deltas    []*discovery.Resource
	namesOnce sync.Once
	names     []string
}

// Anys are the resources as a state-of-the-world response carries them.
func (r *Result) Anys() []*anypb.Any {
	r.anysOnce.Do(func() {
		r.anys = make([]*anypb.Any, len(r.Resources))
		for i, res := range r.Resources {
			r.anys[i] = res.Any
		}
	})
	return r.anys
}

// DeltaResources are the resources as a delta response carries them.
func (r *Result) DeltaResources() []*discovery.Resource {
	r.deltaOnce.Do(func() {
		r.deltas = make([]*discovery.Resource, len(r.Resources))
		for i, res := range r.Resources {
			r.deltas[i] = res.Delta
		}
	})
	return r.deltas
}

// Names are the names of the resources and of the removed ones, sorted, without duplicates.
func (r *Result) Names() []string {
	r.namesOnce.Do(func() {
		out := make([]string, 0, len(r.Resources)+len(r.Removed))
		for _, res := range r.Resources {
			out = append(out, res.Name)
		}
		out = append(out, r.Removed...)
		slices.Sort(out)
		r.names = slices.Compact(out)
	})
	return r.names
}
