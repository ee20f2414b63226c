package controllers

import (
	"reflect"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/event"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// Feedback is what the xDS pipeline learned about each object: translation problems, a snapshot
// that failed validation, a proxy's NACK. The mesh reconciler (every replica) writes it; the status
// reconcilers (leader only) read it and turn it into conditions. It is the one place the two meet.
type Feedback struct {
	mu      sync.Mutex
	objects map[ir.ObjectRef]ObjectFeedback
	// events wake the status reconciler of each kind for an object whose feedback changed.
	events map[string]chan event.GenericEvent
}

// ObjectFeedback is the pipeline's word on one object.
type ObjectFeedback struct {
	// ConfigHash identifies the xDS config built from the object; a NACK holds until it changes.
	ConfigHash uint64
	Problems   translate.Problems
	// PublishError is set when the last snapshot built from this object failed validation.
	PublishError string
	// NACK is the last error a proxy returned for a resource built from this object.
	NACK string
	// Published is true once a snapshot built from the object's current settings was published.
	Published bool
	// Split is, for a Rollout, the traffic split of the last published snapshot: what the
	// proxies apply once they have ACKed its routes.
	Split *PublishedSplit
}

// PublishedSplit is a Rollout's traffic split as published.
type PublishedSplit struct {
	// CanaryWeight, StableRevision and CanaryRevision are the Rollout status fields the published
	// routes were built from.
	CanaryWeight   int32
	StableRevision string
	CanaryRevision string
	// Routes are the route configurations that carry the split; empty when none does (say, the
	// Service does not exist), and then the split applies nowhere.
	Routes []string
}

// NewFeedback returns an empty Feedback.
func NewFeedback() *Feedback {
	return &Feedback{objects: map[ir.ObjectRef]ObjectFeedback{}, events: map[string]chan event.GenericEvent{}}
}

// eventBuffer is how many wake-ups may wait per kind; past it they are dropped, which is safe
// because a status reconciler reads the latest feedback whenever it runs.
const eventBuffer = 1024

// Subscribe returns the channel that wakes the status reconciler of one kind. Call it once per kind,
// before the pipeline runs.
func (f *Feedback) Subscribe(kind string) <-chan event.GenericEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan event.GenericEvent, eventBuffer)
	f.events[kind] = ch
	return ch
}

// For returns the feedback on one object.
func (f *Feedback) For(ref ir.ObjectRef) ObjectFeedback {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[ref]
}

// Translated records a translation: its problems, the objects it used with the hash of the config
// built from each, the Rollouts' splits, and the publish error if the snapshot was refused
// (failedSources are the objects it names; none means every source). Objects whose feedback changed
// are woken.
func (f *Feedback) Translated(problems translate.Problems, sources map[ir.ObjectRef]uint64, splits map[ir.ObjectRef]*PublishedSplit, publishErr error, failedSources []ir.ObjectRef) {
	next := map[ir.ObjectRef]ObjectFeedback{}
	for _, p := range problems {
		fb := next[p.Object]
		fb.Problems = append(fb.Problems, p)
		next[p.Object] = fb
	}
	failed := map[ir.ObjectRef]bool{}
	for _, ref := range failedSources {
		failed[ref] = true
	}
	for ref, hash := range sources {
		fb := next[ref]
		fb.ConfigHash = hash
		switch {
		case publishErr != nil && (failed[ref] || len(failedSources) == 0):
			fb.PublishError = publishErr.Error()
		case publishErr == nil:
			fb.Published = true
		}
		next[ref] = fb
	}
	if publishErr == nil {
		for ref, split := range splits {
			fb := next[ref]
			fb.Split = split
			next[ref] = fb
		}
	}

	f.mu.Lock()
	for ref, fb := range f.objects {
		// A refused snapshot changes nothing on the proxies: the published split stays.
		if publishErr != nil && fb.Split != nil {
			n := next[ref]
			n.Split = fb.Split
			next[ref] = n
		}
		// A NACK stays while the proxies keep the config it was about: until config built from
		// the object changes and is published.
		if fb.NACK != "" && (publishErr != nil || next[ref].ConfigHash == fb.ConfigHash) {
			n := next[ref]
			n.NACK = fb.NACK
			next[ref] = n
		}
	}
	changed := changedRefs(f.objects, next)
	f.objects = next
	f.mu.Unlock()
	f.notify(changed)
}

// NACKed records a proxy's rejection of resources built from the given objects.
func (f *Feedback) NACKed(message string, sources []ir.ObjectRef) {
	f.mu.Lock()
	var changed []ir.ObjectRef
	for _, ref := range sources {
		fb := f.objects[ref]
		if fb.NACK != message {
			fb.NACK = message
			f.objects[ref] = fb
			changed = append(changed, ref)
		}
	}
	f.mu.Unlock()
	f.notify(changed)
}

func changedRefs(before, after map[ir.ObjectRef]ObjectFeedback) []ir.ObjectRef {
	var out []ir.ObjectRef
	for ref, fb := range after {
		if !reflect.DeepEqual(before[ref], fb) {
			out = append(out, ref)
		}
	}
	for ref := range before {
		if _, ok := after[ref]; !ok {
			out = append(out, ref)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// notify wakes the status reconciler of each object's kind, without blocking.
func (f *Feedback) notify(refs []ir.ObjectRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ref := range refs {
		ch := f.events[ref.Kind]
		if ch == nil {
			continue
		}
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion(meshv1alpha1.GroupVersion.String())
		obj.SetKind(ref.Kind)
		obj.SetNamespace(ref.Namespace)
		obj.SetName(ref.Name)
		select {
		case ch <- event.GenericEvent{Object: obj}:
		default:
		}
	}
}

// summary joins the messages of a list of problems.
func summary(problems translate.Problems) (reason, message string) {
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		if p.Field != "" {
			msgs = append(msgs, p.Field+": "+p.Message)
		} else {
			msgs = append(msgs, p.Message)
		}
	}
	return problems[0].Reason, strings.Join(msgs, "; ")
}
