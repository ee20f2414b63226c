package rollout

import (
	"fmt"
	"hash/fnv"
	"sort"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// AnnotationPrefix starts the annotations that carry requests: rollout.sluice.dev/promote and so
// on, each with a fresh value (such as the time) per request:
//
//	kubectl annotate rollout checkout rollout.sluice.dev/promote="$(date -u +%FT%TZ)" --overwrite
const AnnotationPrefix = "rollout.sluice.dev/"

// maxRequestIDLen bounds the request IDs kept in the State; longer ones are kept as a digest.
const maxRequestIDLen = 64

// Annotation is the annotation that carries requests of this kind.
func (k RequestKind) Annotation() string { return AnnotationPrefix + string(k) }

// known says whether k is one of RequestKinds.
func (k RequestKind) known() bool {
	for _, kind := range RequestKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// RequestsFromAnnotations reads the requests from a Rollout's annotations, ordered by ID (so
// timestamps of the same format apply oldest first) and, for equal IDs, in RequestKinds order.
func RequestsFromAnnotations(annotations map[string]string) []Request {
	var out []Request
	for _, kind := range RequestKinds {
		if id, ok := annotations[kind.Annotation()]; ok && id != "" {
			out = append(out, Request{Kind: kind, ID: id})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// requestKey is the form of a request ID kept in the State: the ID itself, or for a long one its
// start and a digest.
func requestKey(id string) string {
	if len(id) <= maxRequestIDLen {
		return id
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return fmt.Sprintf("%s~%016x", id[:maxRequestIDLen-17], h.Sum64())
}

func (s *State) handled(kind RequestKind) string {
	for _, h := range s.HandledRequests {
		if h.Kind == kind {
			return h.ID
		}
	}
	return ""
}

func (s *State) setHandled(kind RequestKind, id string) {
	for i := range s.HandledRequests {
		if s.HandledRequests[i].Kind == kind {
			s.HandledRequests[i].ID = id
			return
		}
	}
	s.HandledRequests = append(s.HandledRequests, HandledRequest{Kind: kind, ID: id})
	sort.Slice(s.HandledRequests, func(i, j int) bool { return s.HandledRequests[i].Kind < s.HandledRequests[j].Kind })
}

// handleRequests applies the requests not handled yet. Of several requests of one kind only the
// last counts. Every new request is marked handled, applied or not, so a request that did not
// apply (a promote with no run) never fires later, on a run it was not meant for.
func (e *engine) handleRequests() {
	last := map[RequestKind]int{}
	for i, r := range e.in.Requests {
		last[r.Kind] = i
	}
	for i, r := range e.in.Requests {
		if last[r.Kind] != i || r.ID == "" || !r.Kind.known() {
			continue
		}
		key := requestKey(r.ID)
		if e.st.handled(r.Kind) == key {
			continue
		}
		e.st.setHandled(r.Kind, key)
		e.apply(r)
	}
}

func (e *engine) apply(r Request) {
	st := &e.st
	running := isRunning(st.Phase)
	by := fmt.Sprintf("by request %s=%s", r.Kind.Annotation(), requestKey(r.ID))
	switch r.Kind {
	case RequestPromote:
		if !running {
			e.ignore(r, "no step is running: the rollout is "+string(st.Phase))
			return
		}
		st.PausedByUser = false
		e.normal("StepPromoted", "%s skipped %s", e.stepName(), by)
		e.advance()
	case RequestPromoteFull:
		if !running {
			e.ignore(r, "no canary is running: the rollout is "+string(st.Phase))
			return
		}
		st.PausedByUser = false
		e.startPromotion("full promotion requested " + by)
	case RequestAbort:
		switch {
		case st.Phase == PhasePromoting && e.copyMayHaveStarted():
			e.ignore(r, "the promotion is under way (the template is being copied to stable); it cannot be aborted")
		case !running && st.Phase != PhasePromoting:
			e.ignore(r, "no canary is running: the rollout is "+string(st.Phase))
		default:
			e.abort("AbortedByUser", "aborted "+by)
		}
	case RequestRetry:
		switch {
		case st.Phase != meshv1alpha1.RolloutRolledBack:
			e.ignore(r, "only a rolled-back rollout can be retried: the rollout is "+string(st.Phase))
		case e.in.Canary.Revision != st.CanaryRevision:
			e.ignore(r, "revision "+e.in.Canary.Revision+" replaced the aborted one; it starts its own run")
		default:
			e.startRun(st.CanaryRevision, "Retry", "retrying revision "+st.CanaryRevision+" from step 0 "+by)
		}
	case RequestPause:
		if st.PausedByUser {
			e.ignore(r, "the rollout is already paused")
			return
		}
		st.PausedByUser = true
		e.normal("Paused", "paused %s: the rollout holds where it is until a resume", by)
		e.settlePhase()
	case RequestResume:
		if !st.PausedByUser {
			e.ignore(r, "the rollout is not paused")
			return
		}
		st.PausedByUser = false
		if running && e.currentPause() > 0 {
			// A timed pause starts over: the pause by hand may have hidden what it was waiting to see.
			st.StepStartedAt = e.stamp()
		}
		e.normal("Resumed", "resumed %s", by)
		e.settlePhase()
	}
}

func (e *engine) ignore(r Request, why string) {
	e.warning("RequestIgnored", "%s=%s ignored: %s", r.Kind.Annotation(), requestKey(r.ID), why)
}
