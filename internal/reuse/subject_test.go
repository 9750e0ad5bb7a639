package reuse

import (
	"strings"
	"testing"
)

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

// keys builds the same two keys as ReuseKey and cacheKey, whatever the
// request's shape.
func TestKeysMatchReuseAndCacheKeys(t *testing.T) {
	for _, r := range []Request{
		{ClientID: "c", Scope: "read", Fingerprint: "fp"},
		{ClientID: "c", Scope: "", Fingerprint: "fp"},
		{ClientID: "c", Scope: "read write", Fingerprint: "fp", Audience: []string{"https://a"}},
		{ClientID: "c", Scope: "read", Fingerprint: "fp", Audience: []string{"https://a", "https://b"}},
		{ClientID: "issuer:https://idp", Scope: "read", Fingerprint: "fp", Subject: "s", Audience: []string{"https://a"}},
		{ClientID: "issuer:https://idp", Scope: "read", Fingerprint: "fp", Subject: "system:serviceaccount:ns:name"},
		{ClientID: "issuer:https://idp", Scope: "read", Fingerprint: "fp", Subject: strings.Repeat("s", 300), Audience: []string{"https://a", "https://b"}},
	} {
		rk, ck := keys(r)
		if want := ReuseKey(r); rk != want {
			t.Errorf("keys(%+v) reuse key = %q, want %q", r, rk, want)
		}
		if want := cacheKey(r.ClientID, ReuseKey(r)); ck != want {
			t.Errorf("keys(%+v) cache key = %q, want %q", r, ck, want)
		}
	}
}
