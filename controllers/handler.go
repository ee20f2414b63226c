package controllers

import (
	"context"
	"strings"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// changeHandler turns every event into the one mesh work item, delayed so a burst of changes is
// translated once. The delaying queue keeps the earliest time for an item already waiting, so a
// change is never delayed by more than delay.
type changeHandler struct {
	note  func()
	delay time.Duration
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (h *changeHandler) enqueue(q queue) {
	h.note()
	q.AddAfter(meshRequest, h.delay)
}

func (h *changeHandler) Create(_ context.Context, _ event.CreateEvent, q queue)   { h.enqueue(q) }
func (h *changeHandler) Update(_ context.Context, _ event.UpdateEvent, q queue)   { h.enqueue(q) }
func (h *changeHandler) Delete(_ context.Context, _ event.DeleteEvent, q queue)   { h.enqueue(q) }
func (h *changeHandler) Generic(_ context.Context, _ event.GenericEvent, q queue) { h.enqueue(q) }

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
