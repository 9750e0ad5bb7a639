package keyring_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// FuzzKeyRows: whatever rows the store holds (a corrupt or hostile ring),
// loading it neither panics nor signs with a key it could not open.
func FuzzKeyRows(f *testing.F) {
	f.Add("ES256", "kid", []byte{0x30, 0x59}, []byte{1, 2, 3})
	f.Add("EdDSA", "", []byte{}, []byte{})
	f.Add("RS256", "x", []byte{0x30, 0x82, 0x01, 0x22}, []byte{1})
	f.Fuzz(func(t *testing.T, alg, kid string, public, sealed []byte) {
		now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
		st := memory.New(memory.Options{})
		if _, err := st.AddSigningKey(context.Background(), store.SigningKey{
			Slot: "initial", ID: kid, Alg: alg, Public: public, Sealed: sealed, CreatedAt: now, ActivateAt: now,
		}); err != nil {
			t.Fatal(err)
		}
		r, err := keyring.New(context.Background(), keyring.Options{
			Store: st, Sealer: plainSealer{}, MaxTokenTTL: time.Hour, Now: func() time.Time { return now },
		})
		if err != nil {
			return
		}
		if k, err := r.Signing(now); err == nil {
			if _, err := k.Sign([]byte(`{}`)); err != nil {
				t.Fatalf("a usable key does not sign: %v", err)
			}
		}
		_ = r.JWKS()
	})
}

// plainSealer "opens" what it is given, so the fuzzer reaches the key
// parsers.
type plainSealer struct{}

func (plainSealer) Seal(p, _ []byte) ([]byte, error) { return append([]byte(nil), p...), nil }
func (plainSealer) Open(s, _ []byte) ([]byte, error) { return append([]byte(nil), s...), nil }
