package envoy

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestTranslateDeterministic translates every golden input several times: the resources must be
// proto.Equal (packed configs are compared byte for byte, so this also catches unordered maps
// inside Any) and the rendering byte-identical.
func TestTranslateDeterministic(t *testing.T) {
	for name, path := range goldenInputs(t) {
		t.Run(name, func(t *testing.T) {
			first := translateGolden(t, name, path)
			firstYAML, err := first.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				again := translateGolden(t, name, path)
				assertSnapshotsEqual(t, first, again)
				y, err := again.YAML()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(firstYAML, y) {
					t.Fatalf("rendering differs between runs:\n%s", firstDiff(firstYAML, y))
				}
			}
		})
	}
}

func assertSnapshotsEqual(t *testing.T, a, b *Snapshot) {
	t.Helper()
	if !slices.Equal(slices.Sorted(maps.Keys(a.Listeners)), slices.Sorted(maps.Keys(b.Listeners))) {
		t.Fatal("listener flavours differ")
	}
	for f := range a.Listeners {
		assertMapsEqual(t, "listener "+string(f), a.Listeners[f], b.Listeners[f])
	}
	assertMapsEqual(t, "route", a.Routes, b.Routes)
	assertMapsEqual(t, "cluster", a.Clusters, b.Clusters)
	assertMapsEqual(t, "endpoints", a.Endpoints, b.Endpoints)
	assertMapsEqual(t, "secret", a.Secrets, b.Secrets)
}

func assertMapsEqual[M proto.Message](t *testing.T, kind string, a, b map[string]M) {
	t.Helper()
	if !slices.Equal(slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))) {
		t.Fatalf("%s names differ: %v vs %v", kind, slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
	}
	for name := range a {
		if !proto.Equal(a[name], b[name]) {
			t.Errorf("%s %q differs between runs", kind, name)
		}
	}
}
