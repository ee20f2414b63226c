package controllers

import (
	"context"
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
