// Package seal encrypts the copy of a bearer token that tokengw keeps for
// reuse, so a dump of the store holds no usable token. It is AES-256-GCM
// under a key ring: the first key seals, every key opens, so keys rotate by
// prepending a new one and dropping the old one after the longest token
// lifetime has passed.
//
// A sealed value is: version byte (1) | key id (4 bytes: the first bytes of
// SHA-256 of the key) | 12-byte random nonce | ciphertext and tag. The caller's
// additional data (the token hash) binds a sealed value to its row.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	version   = 1
	idLen     = 4
	nonceLen  = 12
	headerLen = 1 + idLen + nonceLen
	// KeyLen is the length of a seal key: AES-256.
	KeyLen = 32
)

// Errors.
var (
	ErrNoKeys     = errors.New("seal: no keys")
	ErrUnknownKey = errors.New("seal: sealed with a key that is not configured")
	ErrCorrupt    = errors.New("seal: value is corrupt or was tampered with")
)

type key struct {
	id   [idLen]byte
	aead cipher.AEAD
}

// Sealer seals and opens. It is safe for concurrent use.
type Sealer struct {
	keys []key
}

// New builds a Sealer from 32-byte keys; keys[0] seals.
func New(keys [][]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	s := &Sealer{}
	for i, k := range keys {
		if len(k) != KeyLen {
			return nil, fmt.Errorf("seal: key %d is %d bytes, want %d", i, len(k), KeyLen)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i, err)
		}
		sum := sha256.Sum256(k)
		var kk key
		copy(kk.id[:], sum[:idLen])
		kk.aead = aead
		s.keys = append(s.keys, kk)
	}
	return s, nil
}

// Seal encrypts plaintext bound to aad.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	k := s.keys[0]
	out := make([]byte, headerLen, headerLen+len(plaintext)+k.aead.Overhead())
	out[0] = version
	copy(out[1:], k.id[:])
	if _, err := rand.Read(out[1+idLen : headerLen]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.aead.Seal(out, out[1+idLen:headerLen], plaintext, aad), nil
}

// Open decrypts a value made by Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < headerLen || sealed[0] != version {
		return nil, ErrCorrupt
	}
	for _, k := range s.keys {
		if string(k.id[:]) != string(sealed[1:1+idLen]) {
			continue
		}
		pt, err := k.aead.Open(nil, sealed[1+idLen:headerLen], sealed[headerLen:], aad)
		if err != nil {
			return nil, ErrCorrupt
		}
		return pt, nil
	}
	return nil, ErrUnknownKey
}

// NewKey returns a fresh random key, base64-encoded as config expects.
func NewKey() (string, error) {
	b := make([]byte, KeyLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LoadOrCreateKeyFile returns the key kept in path, creating the file (mode
// 0600, a base64 key on one line) when it does not exist. The embedded store
// uses it when no store.seal_keys are configured.
//
// The file appears complete or not at all (written aside, then hard-linked
// into place), so a process starting at the same time never reads a file
// another one is still writing.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, kerr := NewKey()
		if kerr != nil {
			return nil, kerr
		}
		if err := createKeyFile(path, k); err != nil {
			if errors.Is(err, os.ErrExist) { // another process won the race
				return LoadOrCreateKeyFile(path)
			}
			return nil, fmt.Errorf("seal: %w", err)
		}
		b = []byte(k)
	} else if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeyLen {
		return nil, fmt.Errorf("seal: %s does not hold a base64 32-byte key", path)
	}
	return key, nil
}

// createKeyFile writes k to a temporary file beside path and links it to
// path; os.ErrExist when path exists.
func createKeyFile(path, k string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".seal-key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(k + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(f.Name(), path)
}
