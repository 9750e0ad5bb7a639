package clients

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/tokengw/tokengw/internal/store"
)

// Fingerprint identifies a client's registration: its secret hash, scopes
// and token lifetime. Reuse keys include it, so rotating the secret or
// changing scopes or lifetime stops reuse of the tokens issued before.
func Fingerprint(c store.Client) string {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(c.ID)
	write(c.SecretHash)
	for _, s := range c.Scopes {
		write(s)
	}
	binary.BigEndian.PutUint64(n[:], uint64(c.TokenTTL))
	h.Write(n[:])
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}
