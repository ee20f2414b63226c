package rollout

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRequestsFromAnnotations(t *testing.T) {
	got := RequestsFromAnnotations(map[string]string{
		"rollout.sluice.dev/resume":       "2026-03-01T12:05:00Z",
		"rollout.sluice.dev/pause":        "2026-03-01T12:01:00Z",
		"rollout.sluice.dev/promote":      "2026-03-01T12:05:00Z",
		"rollout.sluice.dev/promote-full": "",
		"rollout.sluice.dev/unknown":      "1",
		"kubectl.kubernetes.io/whatever":  "x",
	})
	want := []Request{
		{RequestPause, "2026-03-01T12:01:00Z"},
		{RequestResume, "2026-03-01T12:05:00Z"}, // same ID: RequestKinds order
		{RequestPromote, "2026-03-01T12:05:00Z"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRequestKey(t *testing.T) {
	short := "2026-03-01T12:05:00Z"
	if requestKey(short) != short {
		t.Errorf("a short ID is kept as it is")
	}
	long1, long2 := strings.Repeat("a", 100)+"1", strings.Repeat("a", 100)+"2"
	k1, k2 := requestKey(long1), requestKey(long2)
	if len(k1) > maxRequestIDLen || k1 == k2 || requestKey(long1) != k1 {
		t.Errorf("long keys %q %q", k1, k2)
	}
}

// A long request ID is applied once, like a short one.
func TestLongRequestIDAppliesOnce(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 1, 10), time.Hour)
	w.request(RequestPromote, strings.Repeat("x", 300))
	w.step()
	w.expect(progressing, 2, 30)
	w.runFor(time.Minute)
	w.expect(progressing, 3, 30) // moved on by itself, not by the same request again
	if w.st.HandledRequests[0].ID != requestKey(strings.Repeat("x", 300)) {
		t.Errorf("handled %+v", w.st.HandledRequests)
	}
}
