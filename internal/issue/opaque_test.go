package issue

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"testing/iotest"
)

func TestMint(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, h, err := Opaque{}.Mint(Claims{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != TokenBytes || len(tok) != 43 {
			t.Fatalf("token %q: %d bytes, %v", tok, len(raw), err)
		}
		want := sha256.Sum256([]byte(tok))
		if !bytes.Equal(h, want[:]) {
			t.Fatalf("hash mismatch")
		}
		if seen[tok] {
			t.Fatalf("duplicate token")
		}
		seen[tok] = true
	}
}

func TestMintRandFailure(t *testing.T) {
	boom := errors.New("boom")
	if _, _, err := (Opaque{Rand: iotest.ErrReader(boom)}).Mint(Claims{}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}
