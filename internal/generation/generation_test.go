package generation

import "testing"

func TestGuard(t *testing.T) {
	g := New()
	s := g.Stamp("a")
	if !g.Valid(s) {
		t.Fatal("a fresh stamp is not valid")
	}
	if (Stamp{}).guarded || g.Valid(Stamp{}) {
		t.Fatal("the zero stamp is valid")
	}
	// A key in another stripe leaves the stamp valid.
	other := ""
	for i := 0; other == ""; i++ {
		if k := string(rune('b' + i)); g.stripe(k) != g.stripe("a") {
			other = k
		}
	}
	g.Bump(other)
	if !g.Valid(s) {
		t.Fatal("a bump of another stripe voided the stamp")
	}
	before := g.Current("a")
	g.Bump("a")
	if g.Valid(s) || g.Current("a") != before+1 {
		t.Fatal("a bump of the key left the stamp valid")
	}
	s = g.Stamp("a")
	g.BumpAll()
	if g.Valid(s) {
		t.Fatal("BumpAll left the stamp valid")
	}
	if g.Current("a") != before+1 {
		t.Fatal("BumpAll moved a key's generation (entries carrying it would go stale for nothing)")
	}
}
