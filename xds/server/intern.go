package server

import (
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// interner holds one copy of the name of every published resource, so that the subscription Sets
// (xds/cache) share the string data of the published names instead of keeping the strings of the
// requests they were built from. It knows only published names, so a client that asks for
// arbitrary names cannot make it grow; such names are kept as they come.
type interner struct {
	mu sync.RWMutex
	m  map[string]string
}

func newInterner() *interner { return &interner{m: map[string]string{}} }

// update records the names Publish added to a cache and forgets the ones no cache publishes any
// more. A name that several caches publish (e.g. a cluster and its endpoints) keeps the copy it
// was first given; the string data of a forgotten name lives on in the streams that refer to it.
func (in *interner) update(upsert map[string]types.Resource, remove []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for name := range upsert {
		if _, ok := in.m[name]; !ok {
			in.m[name] = name
		}
	}
	for _, name := range remove {
		delete(in.m, name)
	}
}

// get returns the shared copy of a name, or the name itself.
func (in *interner) get(s string) string {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if c, ok := in.m[s]; ok {
		return c
	}
	return s
}
