package controllers

import (
	"hash/fnv"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/envoy"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// Mapping xDS resource names back to the Sluice objects that shaped them, so a refused snapshot
// or a proxy's NACK ends up on the right object's conditions.

// nameIndex maps resource names to the objects that shaped them.
type nameIndex map[string][]ir.ObjectRef

// sourceIndex names every resource built for a service port whose settings came from Sluice objects.
func sourceIndex(tree *ir.IR) nameIndex {
	index := nameIndex{}
	for i := range tree.Services {
		svc := &tree.Services[i]
		host := svc.Hostname()
		for _, p := range svc.Ports {
			if len(p.Sources) == 0 {
				continue
			}
			names := []string{envoy.RouteConfigName(host, p.Port), envoy.APIListenerName(host, p.Port)}
			if svc.ClusterIP != "" {
				names = append(names, envoy.EnvoyListenerName(svc.ClusterIP, p.Port))
			}
			for _, s := range p.Subsets {
				names = append(names, envoy.ClusterName(p.Port, s.Name, host))
			}
			for _, n := range names {
				index[n] = append(index[n], p.Sources...)
			}
		}
	}
	return index
}

// hashes returns, for each object, a hash of the listeners, routes and clusters built from it (not
// endpoints, which change with every pod and are not what a NACK of a policy is about).
func (idx nameIndex) hashes(snap *envoy.Snapshot, refs []ir.ObjectRef) map[ir.ObjectRef]uint64 {
	out := make(map[ir.ObjectRef]uint64, len(refs))
	for _, ref := range refs {
		out[ref] = 0
	}
	if snap == nil {
		return out
	}
	names := make([]string, 0, len(idx))
	for name := range idx {
		names = append(names, name)
	}
	sort.Strings(names)
	marshal := proto.MarshalOptions{Deterministic: true}
	for _, name := range names {
		var msgs []proto.Message
		if r, ok := snap.Routes[name]; ok {
			msgs = append(msgs, r)
		}
		if c, ok := snap.Clusters[name]; ok {
			msgs = append(msgs, c)
		}
		for _, f := range envoy.Flavours {
			if l, ok := snap.Listeners[f][name]; ok {
				msgs = append(msgs, l)
			}
		}
		for _, m := range msgs {
			data, _ := marshal.Marshal(m)
			h := fnv.New64a()
			_, _ = h.Write([]byte(name))
			_, _ = h.Write(data)
			for _, ref := range idx[name] {
				out[ref] = out[ref]*31 + h.Sum64()
			}
		}
	}
	return out
}

// namedIn returns the objects behind every resource that err's message names.
func (idx nameIndex) namedIn(err error) []ir.ObjectRef {
	if err == nil {
		return nil
	}
	msg := err.Error()
	seen := map[ir.ObjectRef]bool{}
	var out []ir.ObjectRef
	for name, refs := range idx {
		if !containsWord(msg, name) {
			continue
		}
		for _, ref := range refs {
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// containsWord reports whether s contains word with no name character right before or after it,
// so "a:80" is not found inside "a:8080".
func containsWord(s, word string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		// A trailing '.' ends a sentence; no resource name ends with one.
		if (start == 0 || !isNameChar(s[start-1])) && (end == len(s) || s[end] == '.' || !isNameChar(s[end])) {
			return true
		}
		i = start + 1
	}
}

func isNameChar(c byte) bool {
	return c == '.' || c == '-' || c == '|' || c == ':' || c == '_' ||
		('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// rolloutSplits records, for every Rollout, the split its status asked for and the route
// configurations of snap that carry it.
func rolloutSplits(rollouts []*meshv1alpha1.Rollout, idx nameIndex, snap *envoy.Snapshot) map[ir.ObjectRef]*PublishedSplit {
	out := make(map[ir.ObjectRef]*PublishedSplit, len(rollouts))
	for _, ro := range rollouts {
		out[ir.ObjectRef{Kind: "Rollout", Namespace: ro.Namespace, Name: ro.Name}] = &PublishedSplit{
			CanaryWeight:   ro.Status.CanaryWeight,
			StableRevision: ro.Status.StableRevision,
			CanaryRevision: ro.Status.CanaryRevision,
		}
	}
	for name, refs := range idx {
		if _, ok := snap.Routes[name]; !ok {
			continue
		}
		for _, ref := range refs {
			if split := out[ref]; split != nil {
				split.Routes = append(split.Routes, name)
			}
		}
	}
	for _, split := range out {
		sort.Strings(split.Routes)
	}
	return out
}
