package ring

import (
	"fmt"
	"testing"
)

func TestOwnersAreStableAndBalanced(t *testing.T) {
	a := New(1, map[string]int{"n1": 1, "n2": 1, "n3": 1})
	b := New(2, map[string]int{"n3": 1, "n1": 1, "n2": 1})
	for i := range 1000 {
		k := fmt.Sprint("q", i)
		if a.Owner(k) != b.Owner(k) {
			t.Fatalf("owner of %s differs between equal rings", k)
		}
	}
	for n, s := range a.Shares() {
		if s < 0.25 || s > 0.42 {
			t.Errorf("%s owns %.2f of the ring; want about a third", n, s)
		}
	}
}

func TestWeightsAndMinimalMovement(t *testing.T) {
	r := New(1, map[string]int{"big": 3, "small": 1})
	if s := r.Shares()["big"]; s < 0.65 || s > 0.85 {
		t.Errorf("weight 3 of 4 owns %.2f", s)
	}
	three := New(1, map[string]int{"n1": 1, "n2": 1, "n3": 1})
	four := New(2, map[string]int{"n1": 1, "n2": 1, "n3": 1, "n4": 1})
	moved := 0
	for i := range 10000 {
		k := fmt.Sprint("key/", i)
		was, is := three.Owner(k), four.Owner(k)
		if was != is {
			moved++
			if is != "n4" {
				t.Fatalf("%s moved from %s to %s, not to the new node", k, was, is)
			}
		}
	}
	if moved < 1500 || moved > 3500 {
		t.Errorf("%d of 10000 keys moved to the 4th node; want about 2500", moved)
	}
	if New(0, nil).Owner("x") != "" {
		t.Error("an empty ring has an owner")
	}
}

func BenchmarkOwnerCached(b *testing.B) {
	r := New(1, map[string]int{"n1": 1, "n2": 1, "n3": 1})
	r.Owner("qabc")
	for b.Loop() {
		r.Owner("qabc")
	}
}

func TestShares_SampledOnceAndTheCallersToChange(t *testing.T) {
	r := New(1, map[string]int{"n1": 1, "n2": 1})
	a := r.Shares()
	a["n1"] = 7
	b := r.Shares()
	if b["n1"] == 7 || b["n1"]+b["n2"] < 0.999 {
		t.Fatalf("second call %v after the first's map was changed", b)
	}
}

func TestID_NamesMembersAndWeightsNotEpochs(t *testing.T) {
	a := New(1, map[string]int{"n1": 1, "n2": 2})
	if b := New(7, map[string]int{"n2": 2, "n1": 1}); a.ID() != b.ID() {
		t.Error("equal members and weights, other epoch: IDs differ")
	}
	for _, w := range []map[string]int{{"n1": 1, "n2": 1}, {"n1": 1}, {"n1": 1, "n2": 2, "n3": 1}, {"n1": 1, "n3": 2}} {
		if New(1, w).ID() == a.ID() {
			t.Errorf("%v has the ID of %v", w, a.Nodes())
		}
	}
}
