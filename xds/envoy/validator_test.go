package envoy

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// cloneSnapshot copies every resource of s.
func cloneSnapshot(s *Snapshot) *Snapshot {
	out := NewSnapshot()
	for f, ls := range s.Listeners {
		out.Listeners[f] = cloneMap(ls)
	}
	out.Routes = cloneMap(s.Routes)
	out.Clusters = cloneMap(s.Clusters)
	out.Endpoints = cloneMap(s.Endpoints)
	out.Secrets = cloneMap(s.Secrets)
	return out
}

func cloneMap[M proto.Message](m map[string]M) map[string]M {
	out := make(map[string]M, len(m))
	for k, v := range m {
		out[k] = proto.Clone(v).(M)
	}
	return out
}

// reuse returns next with every resource that equals the one of prev under the same name replaced
// by prev's message, as a Translator would return it.
func reuse(prev, next *Snapshot) *Snapshot {
	out := NewSnapshot()
	for f, ls := range next.Listeners {
		out.Listeners[f] = reuseMap(prev.Listeners[f], ls)
	}
	out.Routes = reuseMap(prev.Routes, next.Routes)
	out.Clusters = reuseMap(prev.Clusters, next.Clusters)
	out.Endpoints = reuseMap(prev.Endpoints, next.Endpoints)
	out.Secrets = reuseMap(prev.Secrets, next.Secrets)
	return out
}

func reuseMap[M proto.Message](prev, next map[string]M) map[string]M {
	out := make(map[string]M, len(next))
	for k, v := range next {
		if p, ok := prev[k]; ok && proto.Equal(p, v) {
			v = p
		}
		out[k] = v
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestValidatorSameVerdicts: a Validator that saw the valid snapshot judges each broken one, whose
// unchanged resources are the messages it saw, exactly as Validate does; and again once it has seen
// every message.
func TestValidatorSameVerdicts(t *testing.T) {
	for _, tc := range validateRejectCases {
		t.Run(tc.name, func(t *testing.T) {
			base := validSnapshot(t)
			v := &Validator{}
			if err := base.ValidateWith(v); err != nil {
				t.Fatalf("ValidateWith rejected the valid snapshot: %v", err)
			}
			broken := cloneSnapshot(base)
			tc.mutate(broken)
			want := broken.Validate()
			if want == nil {
				t.Fatal("Validate accepted the broken snapshot")
			}
			mixed := reuse(base, broken)
			for range 2 {
				if got := mixed.ValidateWith(v); errString(got) != errString(want) {
					t.Fatalf("ValidateWith:\n%v\nValidate:\n%v", got, want)
				}
			}
			// And back: the valid snapshot passes again.
			if err := base.ValidateWith(v); err != nil {
				t.Fatalf("ValidateWith rejected the valid snapshot after the broken one: %v", err)
			}
		})
	}
}

// TestValidatorRemovedCluster: an unchanged route that sends to a cluster that went away is
// rejected, although the route itself was validated before.
func TestValidatorRemovedCluster(t *testing.T) {
	s := validSnapshot(t)
	v := &Validator{}
	if err := s.ValidateWith(v); err != nil {
		t.Fatal(err)
	}
	delete(s.Clusters, checkoutV2)
	delete(s.Endpoints, checkoutV2)
	err := s.ValidateWith(v)
	want := `route configuration "` + checkoutRoutes + `" virtual host "` + checkoutRoutes + `" route "beta": cluster "` + checkoutV2 + `" does not exist`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ValidateWith = %v, want an error with %q", err, want)
	}
	if errString(err) != errString(s.Validate()) {
		t.Errorf("ValidateWith:\n%v\nValidate:\n%v", err, s.Validate())
	}
}

// TestValidatorRemembersAndForgets: a message validated before is not checked alone again (so a
// forbidden in-place change goes unseen), one stored under another name is, and the Validator
// keeps only the messages of the last snapshot.
func TestValidatorRemembersAndForgets(t *testing.T) {
	s := validSnapshot(t)
	v := &Validator{}
	if err := s.ValidateWith(v); err != nil {
		t.Fatal(err)
	}
	if got, want := len(v.seen), countResources(s); got != want {
		t.Errorf("the Validator remembers %d messages, the snapshot has %d", got, want)
	}

	s.Clusters[checkoutV1].ConnectTimeout = duration(-1) // what callers must not do
	if err := s.ValidateWith(v); err != nil {
		t.Errorf("a remembered message was checked again: %v", err)
	}
	if err := s.Validate(); err == nil {
		t.Error("Validate accepted the broken cluster")
	}

	// Fewer resources: the Validator forgets the others.
	small := NewSnapshot()
	small.Listeners[FlavourEnvoy][VirtualOutboundListener] = s.Listeners[FlavourEnvoy][VirtualOutboundListener]
	small.Clusters[PassthroughCluster] = s.Clusters[PassthroughCluster]
	if err := small.ValidateWith(v); err != nil {
		t.Fatal(err)
	}
	if len(v.seen) != 2 {
		t.Errorf("the Validator remembers %d messages after a snapshot of 2", len(v.seen))
	}
	// The broken cluster was forgotten, so it is checked again.
	if err := s.ValidateWith(v); err == nil || !strings.Contains(err.Error(), "invalid Cluster.ConnectTimeout") {
		t.Errorf("a forgotten message was not checked again: %v", err)
	}
}

func countResources(s *Snapshot) int {
	n := len(s.Routes) + len(s.Clusters) + len(s.Endpoints) + len(s.Secrets)
	for _, ls := range s.Listeners {
		n += len(ls)
	}
	return n
}
