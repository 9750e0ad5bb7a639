package bolt

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

func TestCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 24, 8, 0, 0, 123e6, time.UTC)
	hash := make([]byte, 32)
	hash[0] = 0xfe

	tokens := map[string]store.Token{
		"full":    {Hash: hash, ClientID: "alpha", Scope: "read write", ReuseKey: "read write", IssuedAt: at, ExpiresAt: at.Add(time.Hour), Revoked: true},
		"minimal": {Hash: hash},
		"before 1970": {Hash: hash, ClientID: "x", IssuedAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
			ExpiresAt: time.Date(1969, 12, 31, 23, 59, 59, 999e6, time.UTC)},
	}
	for name, tok := range tokens {
		got, err := decodeToken(tok.Hash, encodeToken(tok))
		if err != nil || !reflect.DeepEqual(got, tok) {
			t.Errorf("token %s: round trip = %+v, %v; want %+v", name, got, err, tok)
		}
		if ms, err := tokenExpiry(encodeToken(tok)); err != nil || ms != tok.ExpiresAt.UnixMilli() {
			t.Errorf("token %s: tokenExpiry = %d, %v", name, ms, err)
		}
	}

	currents := map[string]store.Current{
		"full": {ClientID: "alpha", ReuseKey: "read", TokenHash: hash, Sealed: []byte("sealed"), Scope: "read",
			IssuedAt: at, ExpiresAt: at.Add(time.Hour), ReuseUntil: at.Add(30 * time.Minute)},
		"empty reuse key": {ClientID: "alpha", TokenHash: hash, Sealed: []byte{0}},
		"NUL in reuse key": {ClientID: "a", ReuseKey: "b\x00c", TokenHash: hash, Sealed: []byte{1},
			ReuseUntil: at},
	}
	for name, c := range currents {
		k := slotKey(c.ClientID, c.ReuseKey)
		got, err := decodeCurrent(k, encodeCurrent(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("current %s: round trip = %+v, %v; want %+v", name, got, err, c)
		}
	}

	clients := map[string]store.Client{
		"full": {ID: "alpha", SecretHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Scopes: []string{"read", "write"},
			TokenTTL: 90*time.Second + 1, Limit: &store.Limit{Rate: 0.5, Burst: 3}, Introspect: true, CreatedAt: at, UpdatedAt: at.Add(time.Second)},
		"no limit, no scopes, zero times": {ID: "beta", SecretHash: "x"},
		"zero limit":                      {ID: "gamma", Limit: &store.Limit{}, Scopes: []string{""}},
		"private_key_jwt": {ID: "delta", Scopes: []string{"read"}, AuthMethod: "private_key_jwt", JWKS: `{"keys":[]}`,
			Resources: []string{"https://api.example/", "urn:x"}, Limit: &store.Limit{Rate: 2, Burst: 4}, CreatedAt: at, UpdatedAt: at},
		"jwks_uri":       {ID: "eps", AuthMethod: "private_key_jwt", JWKSURI: "https://idp.example/jwks"},
		"resources only": {ID: "zeta", SecretHash: "x", Resources: []string{"urn:a"}},
	}
	for name, c := range clients {
		got, err := decodeClient([]byte(c.ID), encodeClient(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("client %s: round trip = %+v, %v; want %+v", name, got, err, c)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	tok := encodeToken(store.Token{ClientID: "alpha", Scope: "read", ExpiresAt: time.Now()})
	cur := encodeCurrent(store.Current{ClientID: "a", TokenHash: make([]byte, 32), Sealed: []byte("s")})
	cl := encodeClient(store.Client{ID: "a", Scopes: []string{"read"}, Limit: &store.Limit{Rate: 1}})
	hash := make([]byte, 32)
	bump := func(b []byte) []byte { b = append([]byte(nil), b...); b[0]++; return b }
	trailing := func(b []byte) []byte { return append(append([]byte(nil), b...), 0) }
	for _, tc := range []struct {
		name   string
		decode func() error
	}{
		{"token empty", func() error { _, err := decodeToken(hash, nil); return err }},
		{"token version", func() error { _, err := decodeToken(hash, bump(tok)); return err }},
		{"token trailing", func() error { _, err := decodeToken(hash, trailing(tok)); return err }},
		{"current key without NUL", func() error { _, err := decodeCurrent([]byte("a"), cur); return err }},
		{"current version", func() error { _, err := decodeCurrent(slotKey("a", ""), bump(cur)); return err }},
		{"client version", func() error { _, err := decodeClient([]byte("a"), bump(cl)); return err }},
		{"client scope count", func() error { _, err := decodeClient([]byte("a"), []byte{1, 0, 0, 0xff, 0x01}); return err }},
		{"client NaN rate", func() error {
			_, err := decodeClient([]byte("a"), encodeClient(store.Client{ID: "a", Limit: &store.Limit{Rate: math.NaN()}}))
			return err
		}},
		{"client negative rate", func() error {
			_, err := decodeClient([]byte("a"), encodeClient(store.Client{ID: "a", Limit: &store.Limit{Rate: -1}}))
			return err
		}},
	} {
		if err := tc.decode(); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", tc.name, err)
		}
	}
	for n := range len(tok) {
		if _, err := decodeToken(hash, tok[:n]); !errors.Is(err, errCorrupt) {
			t.Errorf("token truncated to %d bytes: err = %v", n, err)
		}
	}
	for n := range len(cur) {
		if _, err := decodeCurrent(slotKey("a", ""), cur[:n]); !errors.Is(err, errCorrupt) {
			t.Errorf("current truncated to %d bytes: err = %v", n, err)
		}
	}
	for n := range len(cl) {
		if _, err := decodeClient([]byte("a"), cl[:n]); !errors.Is(err, errCorrupt) {
			t.Errorf("client truncated to %d bytes: err = %v", n, err)
		}
	}
}

// TestDecodeClientBeforeAuthFields: a client record written before the
// auth fields existed (flags without bit 2) still reads; one with a flag
// bit this version does not know is corrupt, not guessed at.
func TestDecodeClientBeforeAuthFields(t *testing.T) {
	// version 1, flags introspect, secret "h", scopes ["r"], token_ttl 0,
	// created_at 0, updated_at 2 ms (zig-zag 4).
	old := []byte{1, 1, 1, 'h', 1, 1, 'r', 0, 0, 4}
	c, err := decodeClient([]byte("a"), old)
	want := store.Client{ID: "a", SecretHash: "h", Scopes: []string{"r"}, Introspect: true, CreatedAt: time.UnixMilli(0).UTC(), UpdatedAt: time.UnixMilli(2).UTC()}
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("old record = %+v, %v; want %+v", c, err, want)
	}
	if enc := encodeClient(want); !bytes.Equal(enc, old) {
		t.Fatalf("encodeClient(client without auth fields) = %v, want the old bytes %v", enc, old)
	}
	unknown := append([]byte{}, old...)
	unknown[1] |= 1 << 5
	if _, err := decodeClient([]byte("a"), unknown); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown flag bit: err = %v, want errCorrupt", err)
	}
}

func TestExpiryKeyOrder(t *testing.T) {
	h := []byte{0xff}
	times := []time.Time{
		time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), // clamps to 0
		time.UnixMilli(0),
		time.UnixMilli(1),
		time.UnixMilli(255),
		time.UnixMilli(256),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := expiryKey(times[i-1], h), expiryKey(times[i], h)
		if string(a) > string(b) {
			t.Errorf("expiryKey(%v) sorts after expiryKey(%v)", times[i-1], times[i])
		}
	}
}

// FuzzDecodeRecord: any bytes a row may hold decode to a record or to
// errCorrupt, never a panic; a record that decodes encodes back to bytes
// that decode to the same record.
func FuzzDecodeRecord(f *testing.F) {
	at := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	f.Add(encodeToken(store.Token{ClientID: "alpha", Scope: "read", ReuseKey: "read", IssuedAt: at, ExpiresAt: at.Add(time.Hour), Revoked: true}))
	f.Add(encodeCurrent(store.Current{ClientID: "a", TokenHash: make([]byte, 32), Sealed: []byte("s"), ReuseUntil: at}))
	f.Add(encodeClient(store.Client{ID: "a", Scopes: []string{"read", "write"}, Limit: &store.Limit{Rate: 1, Burst: 2}, TokenTTL: time.Minute}))
	f.Add([]byte{1, 0, 0, 0xff, 0x01})
	f.Add(encodeClient(store.Client{ID: "a", Scopes: []string{"read"}, AuthMethod: "private_key_jwt", JWKSURI: "https://i/j", Resources: []string{"urn:a"}}))
	hash := make([]byte, 32)
	f.Fuzz(func(t *testing.T, v []byte) {
		if tok, err := decodeToken(hash, v); err == nil {
			if again, err := decodeToken(hash, encodeToken(tok)); err != nil || !reflect.DeepEqual(again, tok) {
				t.Fatalf("token %+v: round trip %+v, %v", tok, again, err)
			}
		} else if !errors.Is(err, errCorrupt) {
			t.Fatalf("decodeToken: %v", err)
		}
		_, _ = tokenExpiry(v)
		k := slotKey("a", "k")
		if c, err := decodeCurrent(k, v); err == nil {
			if again, err := decodeCurrent(k, encodeCurrent(c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("current %+v: round trip %+v, %v", c, again, err)
			}
		} else if !errors.Is(err, errCorrupt) {
			t.Fatalf("decodeCurrent: %v", err)
		}
		if c, err := decodeClient([]byte("a"), v); err == nil {
			if again, err := decodeClient([]byte("a"), encodeClient(c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("client %+v: round trip %+v, %v", c, again, err)
			}
		} else if !errors.Is(err, errCorrupt) {
			t.Fatalf("decodeClient: %v", err)
		}
	})
}
