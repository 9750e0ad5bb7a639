package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func keyOf(b byte) []byte { return bytes.Repeat([]byte{b}, KeyLen) }

func TestSealOpen(t *testing.T) {
	s, err := New([][]byte{keyOf(1)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Seal([]byte("bearer-token"), []byte("hash-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(v, []byte("bearer-token")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := s.Open(v, []byte("hash-1"))
	if err != nil || string(got) != "bearer-token" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(v, []byte("hash-2")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with other aad: %v, want ErrCorrupt", err)
	}
	v[len(v)-1] ^= 1
	if _, err := s.Open(v, []byte("hash-1")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open tampered: %v, want ErrCorrupt", err)
	}
	if _, err := s.Open([]byte{1, 2}, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open short: %v", err)
	}
}

func TestRotation(t *testing.T) {
	old, _ := New([][]byte{keyOf(1)})
	v, _ := old.Seal([]byte("tok"), nil)
	rotated, _ := New([][]byte{keyOf(2), keyOf(1)})
	if got, err := rotated.Open(v, nil); err != nil || string(got) != "tok" {
		t.Fatalf("rotated Open = %q, %v", got, err)
	}
	v2, _ := rotated.Seal([]byte("tok2"), nil)
	if _, err := old.Open(v2, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old ring opened a value sealed by the new key: %v", err)
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("New(nil) = %v", err)
	}
	if _, err := New([][]byte{[]byte("short")}); err == nil {
		t.Fatal("New(short key) succeeded")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "seal.key")
	k1, err := LoadOrCreateKeyFile(p)
	if err != nil || len(k1) != KeyLen {
		t.Fatalf("create: %d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	k2, err := LoadOrCreateKeyFile(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload gave another key (%v)", err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(p); err == nil {
		t.Fatal("a garbage key file was accepted")
	}
}

// TestLoadOrCreateKeyFileConcurrent: processes starting at once on a fresh
// data directory all get the one key; none reads the file between the
// winner's create and its write.
func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	for range 20 {
		p := filepath.Join(t.TempDir(), "seal.key")
		const n = 16
		keys := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys[i], errs[i] = LoadOrCreateKeyFile(p)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("caller %d got another key", i)
			}
		}
	}
}
