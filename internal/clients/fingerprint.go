package clients

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/tokengw/tokengw/internal/store"
)

// Fingerprint identifies a client's registration: its secret hash, scopes,
// token lifetime and, when set, its authentication method, key source
// (jwks, jwks_uri) and resource indicators. Reuse keys include it, so
// rotating the secret or the keys, or changing scopes, lifetime or
// resources, stops reuse of the tokens issued before. A registration
// without the later fields keeps the fingerprint it had before they
// existed, so an upgrade does not drop every reuse slot.
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
	// The secret methods are one for reuse (a secret client may use either,
	// and registrations from before the field stored ""): a switch
	// between them leaves the tokens reusable, and a registration naming
	// one keeps the fingerprint it had when it was stored as "".
	method := c.AuthMethod
	if UsesSecret(method) {
		method = ""
	}
	if method != "" || c.JWKS != "" || c.JWKSURI != "" || len(c.Resources) > 0 {
		write("\x00auth")
		write(method)
		write(c.JWKS)
		write(c.JWKSURI)
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Resources)))
		h.Write(n[:])
		for _, r := range c.Resources {
			write(r)
		}
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}
