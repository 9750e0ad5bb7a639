package reuse

import "testing"

// The reuse key of a subject's request keys on the subject and the
// audience, unambiguously; without a subject it is the key as before.
func TestReuseKeySubject(t *testing.T) {
	base := Request{ClientID: "issuer:https://idp", Scope: "read", Fingerprint: "fp"}
	if got := ReuseKey(base); got != "read\x00fp" {
		t.Fatalf("key without a subject = %q", got)
	}
	keys := map[string]Request{}
	for _, r := range []Request{
		{}, {Subject: "a"}, {Subject: "b"}, {Subject: "a", Audience: []string{"https://x"}},
		{Subject: "a\x00sub:1:x"}, {Subject: "a\x00", Audience: []string{"https://x"}}, {Audience: []string{"https://x"}},
	} {
		r.ClientID, r.Scope, r.Fingerprint = base.ClientID, base.Scope, base.Fingerprint
		k := ReuseKey(r)
		if prev, dup := keys[k]; dup {
			t.Fatalf("%+v and %+v share the reuse key %q", prev, r, k)
		}
		keys[k] = r
	}
}
