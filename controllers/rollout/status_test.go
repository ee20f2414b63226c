package rollout

import (
	"encoding/json"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// statusRoundTrip stores a State in a Rollout's status, as JSON the way the API server keeps it,
// and reads it back: what an operator restart sees.
func statusRoundTrip(s State) (State, error) {
	var st meshv1alpha1.RolloutStatus
	s.WriteStatus(&st)
	data, err := json.Marshal(&st)
	if err != nil {
		return State{}, err
	}
	var back meshv1alpha1.RolloutStatus
	if err := json.Unmarshal(data, &back); err != nil {
		return State{}, err
	}
	return StateFromStatus(&back), nil
}

func throughStatus(t testing.TB, s State) State {
	t.Helper()
	back, err := statusRoundTrip(s)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func sameJSON(a, b State) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
