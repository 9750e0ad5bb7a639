package clientauth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrBadHash is wrapped by every error about a stored hash that cannot be
// used: not a PHC string, an unsupported algorithm, or parameters outside
// the caps below.
var ErrBadHash = errors.New("clientauth: bad secret hash")

// Caps on the parameters a stored hash may carry, so that one hostile or
// mistyped hash cannot make a verification take minutes or more than 2 GiB
// (RFC 9106 §4's first recommendation, t=1 over 2 GiB, is the largest
// argon2 cost allowed; MaxArgon2Work bounds memory × passes).
const (
	MaxArgon2Memory     = 1 << 21 // KiB (2 GiB)
	MaxArgon2Time       = 100     // passes
	MaxArgon2Work       = 1 << 22 // KiB × passes (2 GiB × 2, 64 MiB × 64): a few seconds
	MaxArgon2Threads    = 64      // lanes
	MaxBcryptCost       = 16      // 2^16 rounds, a few seconds
	MaxPBKDF2Iterations = 10_000_000
	MinKeyLen           = 16   // bytes of derived key: shorter tags are guessable
	MaxKeyLen           = 128  // bytes of derived key
	MaxSaltLen          = 1024 // bytes
	minArgon2SaltLen    = 8    // argon2 spec: "Salt S: ... 8 to 2^32-1 bytes"
)

// HashSecret sizes.
const (
	saltLen = 16 // bytes of random salt
	keyLen  = 32 // bytes of derived key
)

// Argon2Params are the cost parameters of an argon2id hash.
type Argon2Params struct {
	// Memory in KiB (m).
	Memory uint32
	// Time is the number of passes over the memory (t).
	Time uint32
	// Threads is the degree of parallelism (p).
	Threads uint8
}

// DefaultArgon2Params is the OWASP Password Storage Cheat Sheet minimum for
// argon2id: "m=19456 (19 MiB), t=2, p=1".
var DefaultArgon2Params = Argon2Params{Memory: 19456, Time: 2, Threads: 1}

// limits are the caps one parse applies. The fuzz tests use tiny ones.
type limits struct {
	argon2Memory  uint32
	argon2Time    uint32
	argon2Work    uint64
	argon2Threads uint8
	bcryptCost    int
	pbkdf2Iter    int
}

func defaultLimits() limits {
	return limits{
		argon2Memory:  MaxArgon2Memory,
		argon2Time:    MaxArgon2Time,
		argon2Work:    MaxArgon2Work,
		argon2Threads: MaxArgon2Threads,
		bcryptCost:    MaxBcryptCost,
		pbkdf2Iter:    MaxPBKDF2Iterations,
	}
}

// ParamError is an argon2 parameter outside RFC 9106 or tokengw's caps.
// Param is the PHC name of the offending parameter: "m", "t" or "p" (a
// product of m and t beyond MaxArgon2Work is reported as "m").
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Msg }

// Validate reports parameters outside RFC 9106 or the caps above: the one
// rule for the parameters tokengw hashes with (auth.argon2, the admin API,
// the CLI) and the ones a stored hash may carry. The error is a *ParamError.
func (p Argon2Params) Validate() error { return p.check(defaultLimits()) }

// check reports parameters outside RFC 9106 or the caps in lim.
func (p Argon2Params) check(lim limits) error {
	switch {
	case p.Time < 1 || p.Time > lim.argon2Time:
		return &ParamError{"t", fmt.Sprintf("t=%d outside 1..%d", p.Time, lim.argon2Time)}
	case p.Threads < 1 || p.Threads > lim.argon2Threads:
		return &ParamError{"p", fmt.Sprintf("p=%d outside 1..%d", p.Threads, lim.argon2Threads)}
	case p.Memory < 8*uint32(p.Threads) || p.Memory > lim.argon2Memory:
		// RFC 9106 §3.1: "Memory size m MUST be an integer number of
		// kibibytes from 8*p to 2^(32)-1."
		return &ParamError{"m", fmt.Sprintf("m=%d outside 8*p..%d KiB", p.Memory, lim.argon2Memory)}
	case uint64(p.Memory)*uint64(p.Time) > lim.argon2Work:
		return &ParamError{"m", fmt.Sprintf("m=%d × t=%d beyond %d KiB-passes (2 GiB × 2)", p.Memory, p.Time, lim.argon2Work)}
	}
	return nil
}

// HashSecret hashes a client secret with argon2id, a 16-byte random salt and
// a 32-byte key, and returns it as a PHC string:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
//
// with salt and hash in standard base64 without padding.
func HashSecret(secret string, p Argon2Params) (string, error) {
	if secret == "" {
		return "", errors.New("clientauth: empty secret")
	}
	if err := p.check(defaultLimits()); err != nil {
		return "", fmt.Errorf("clientauth: argon2id parameters: %w", err)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("clientauth: salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, keyLen)
	return encodeArgon2("argon2id", p, salt, key), nil
}

func encodeArgon2(alg string, p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", alg, argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifySecret reports whether secret matches the PHC hash phc. A hash that
// cannot be used is an error wrapping ErrBadHash, never a match. The final
// comparison is in constant time.
//
// bcrypt uses only the first 72 bytes of a secret, as every bcrypt does.
func VerifySecret(phc, secret string) (bool, error) {
	return verifySecret(phc, secret, defaultLimits())
}

func verifySecret(phc, secret string, lim limits) (bool, error) {
	h, err := parseHash(phc, lim)
	if err != nil {
		return false, err
	}
	return h.verify(secret)
}

// ValidHash checks that phc is a hash VerifySecret can use, without
// computing it: for configuration checks at start-up.
func ValidHash(phc string) error {
	_, err := parseHash(phc, defaultLimits())
	return err
}

// parsedHash is a parsed, validated stored hash.
type parsedHash interface {
	verify(secret string) (bool, error)
}

// parseHash parses a PHC string (https://github.com/P-H-C/phc-string-format):
//
//	$<id>[$v=<version>][$<param>=<value>(,<param>=<value>)*][$<salt>[$<hash>]]
//
// or bcrypt's modular-crypt form, or passlib's pbkdf2 form.
func parseHash(phc string, lim limits) (parsedHash, error) {
	if !strings.HasPrefix(phc, "$") {
		return nil, fmt.Errorf("%w: not a PHC string", ErrBadHash)
	}
	fields := strings.Split(phc[1:], "$")
	switch id := fields[0]; id {
	case "argon2id", "argon2i":
		return parseArgon2(id, fields[1:], lim)
	case "2a", "2b", "2y":
		return parseBcrypt(phc, lim)
	case "pbkdf2-sha256":
		return parsePBKDF2(sha256.New, fields[1:], lim)
	case "pbkdf2-sha512":
		return parsePBKDF2(sha512.New, fields[1:], lim)
	default:
		if len(id) > 20 {
			id = id[:20] + "..."
		}
		return nil, fmt.Errorf("%w: unsupported algorithm %q", ErrBadHash, id)
	}
}

type argon2Hash struct {
	id        bool // argon2id (else argon2i)
	p         Argon2Params
	salt, key []byte
}

// parseArgon2 parses what follows "$argon2id" or "$argon2i":
// "v=19", "m=<m>,t=<t>,p=<p>", salt, hash.
func parseArgon2(alg string, f []string, lim limits) (*argon2Hash, error) {
	if len(f) != 4 {
		return nil, fmt.Errorf("%w: %s: want $v=19$m=,t=,p=$salt$hash", ErrBadHash, alg)
	}
	if f[0] != "v=19" {
		// golang.org/x/crypto/argon2 computes version 0x13 (19) only.
		return nil, fmt.Errorf("%w: %s: unsupported version (want v=19)", ErrBadHash, alg)
	}
	vals, err := phcParams(f[1], "m", "t", "p")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadHash, alg, err)
	}
	// Ten decimal digits reach past uint32: check before converting, or
	// m=4294967360 would wrap to m=64.
	if vals[0] > math.MaxUint32 || vals[1] > math.MaxUint32 || vals[2] > 255 {
		return nil, fmt.Errorf("%w: %s: m=%d,t=%d,p=%d too large", ErrBadHash, alg, vals[0], vals[1], vals[2])
	}
	p := Argon2Params{Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2])}
	if err := p.check(lim); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadHash, alg, err)
	}
	salt, key, err := saltAndKey(alg, f[2], f[3], false, minArgon2SaltLen)
	if err != nil {
		return nil, err
	}
	return &argon2Hash{id: alg == "argon2id", p: p, salt: salt, key: key}, nil
}

func (h *argon2Hash) verify(secret string) (bool, error) {
	var got []byte
	if h.id {
		got = argon2.IDKey([]byte(secret), h.salt, h.p.Time, h.p.Memory, h.p.Threads, uint32(len(h.key)))
	} else {
		got = argon2.Key([]byte(secret), h.salt, h.p.Time, h.p.Memory, h.p.Threads, uint32(len(h.key)))
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

type bcryptHash []byte

// parseBcrypt checks the modular-crypt form "$2b$<cost>$<22 salt><31 hash>"
// strictly (golang.org/x/crypto/bcrypt's own parser is lenient) and caps
// the cost.
func parseBcrypt(phc string, lim limits) (bcryptHash, error) {
	const n = 60 // "$2b$10$" + 53
	if len(phc) != n || phc[3] != '$' || phc[6] != '$' {
		return nil, fmt.Errorf("%w: bcrypt: want $2b$<cost>$<53 characters>", ErrBadHash)
	}
	d0, d1 := phc[4], phc[5]
	if d0 < '0' || d0 > '9' || d1 < '0' || d1 > '9' {
		return nil, fmt.Errorf("%w: bcrypt: cost is not two digits", ErrBadHash)
	}
	cost := int(d0-'0')*10 + int(d1-'0')
	if cost < bcrypt.MinCost || cost > lim.bcryptCost {
		return nil, fmt.Errorf("%w: bcrypt: cost %d outside %d..%d", ErrBadHash, cost, bcrypt.MinCost, lim.bcryptCost)
	}
	for i := 7; i < n; i++ {
		if !isBcryptB64(phc[i]) {
			return nil, fmt.Errorf("%w: bcrypt: bad character in salt or hash", ErrBadHash)
		}
	}
	return bcryptHash(phc), nil
}

func isBcryptB64(c byte) bool {
	return c == '.' || c == '/' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

func (h bcryptHash) verify(secret string) (bool, error) {
	// CompareHashAndPassword compares in constant time.
	err := bcrypt.CompareHashAndPassword(h, []byte(secret))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("%w: bcrypt: %w", ErrBadHash, err)
	}
}

type pbkdf2Hash struct {
	newHash   func() hash.Hash
	iter      int
	salt, key []byte
}

// parsePBKDF2 parses what follows "$pbkdf2-sha256" (or -sha512) in either
// form:
//
//	PHC:     $i=<iterations>[,l=<key length>]$<salt b64>$<hash b64>
//	passlib: $<iterations>$<salt ab64>$<hash ab64>
//
// passlib's "ab64" is standard base64 with '.' for '+' and no padding.
func parsePBKDF2(newHash func() hash.Hash, f []string, lim limits) (*pbkdf2Hash, error) {
	const alg = "pbkdf2"
	if len(f) != 3 {
		return nil, fmt.Errorf("%w: %s: want $i=<iterations>,l=<length>$salt$hash", ErrBadHash, alg)
	}
	var (
		iter   uint64
		keyLen = -1
		ab64   bool
		err    error
	)
	if strings.HasPrefix(f[0], "i=") {
		names := []string{"i"}
		if strings.Contains(f[0], ",") {
			names = append(names, "l")
		}
		vals, perr := phcParams(f[0], names...)
		if perr != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadHash, alg, perr)
		}
		iter = vals[0]
		if len(vals) == 2 {
			keyLen = int(min(vals[1], MaxKeyLen+1))
		}
	} else {
		ab64 = true
		if iter, err = decimal(f[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: iterations: %w", ErrBadHash, alg, err)
		}
	}
	if iter < 1 || iter > uint64(lim.pbkdf2Iter) {
		return nil, fmt.Errorf("%w: %s: %d iterations outside 1..%d", ErrBadHash, alg, iter, lim.pbkdf2Iter)
	}
	salt, key, err := saltAndKey(alg, f[1], f[2], ab64, 0)
	if err != nil {
		return nil, err
	}
	if keyLen >= 0 && keyLen != len(key) {
		return nil, fmt.Errorf("%w: %s: l=%d but the hash has %d bytes", ErrBadHash, alg, keyLen, len(key))
	}
	return &pbkdf2Hash{newHash: newHash, iter: int(iter), salt: salt, key: key}, nil
}

func (h *pbkdf2Hash) verify(secret string) (bool, error) {
	got, err := pbkdf2.Key(h.newHash, secret, h.salt, h.iter, len(h.key))
	if err != nil {
		// Only in FIPS 140-only mode, for parameters it refuses.
		return false, fmt.Errorf("clientauth: pbkdf2: %w", err)
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

// saltAndKey decodes the salt and hash fields of a PHC string. ab64 selects
// passlib's alphabet ('.' instead of '+').
func saltAndKey(alg, s, k string, ab64 bool, minSalt int) (salt, key []byte, err error) {
	salt, err = decodeB64(s, ab64)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: salt: %w", ErrBadHash, alg, err)
	}
	key, err = decodeB64(k, ab64)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: hash: %w", ErrBadHash, alg, err)
	}
	if len(salt) < minSalt || len(salt) > MaxSaltLen {
		return nil, nil, fmt.Errorf("%w: %s: salt of %d bytes outside %d..%d", ErrBadHash, alg, len(salt), minSalt, MaxSaltLen)
	}
	if len(key) < MinKeyLen || len(key) > MaxKeyLen {
		return nil, nil, fmt.Errorf("%w: %s: hash of %d bytes outside %d..%d", ErrBadHash, alg, len(key), MinKeyLen, MaxKeyLen)
	}
	return salt, key, nil
}

// decodeB64 decodes standard base64 without padding ("B64" of the PHC
// format), or passlib's ab64 (which, like passlib's decoder, also takes
// '+'). Unlike encoding/base64 alone it refuses anything outside the
// alphabet, including the line breaks that package skips.
func decodeB64(s string, ab64 bool) ([]byte, error) {
	if len(s) > 4*MaxSaltLen/3+4 {
		return nil, errors.New("too long")
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '/':
		case c == '+':
		case c == '.' && ab64:
			b[i] = '+'
		default:
			return nil, fmt.Errorf("bad base64 character %q", c)
		}
	}
	return base64.RawStdEncoding.DecodeString(string(b))
}

// phcParams parses "k1=v1,k2=v2,..." with exactly the given names in order
// and decimal values.
func phcParams(s string, names ...string) ([]uint64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != len(names) {
		return nil, fmt.Errorf("want parameters %s", strings.Join(names, ","))
	}
	vals := make([]uint64, len(names))
	for i, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k != names[i] {
			return nil, fmt.Errorf("want parameters %s", strings.Join(names, ","))
		}
		n, err := decimal(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		vals[i] = n
	}
	return vals, nil
}

// decimal parses a PHC decimal: digits only, no sign, no leading zero, at
// most 10 digits (PHC: "decimal ... MUST NOT have leading zeros").
func decimal(s string) (uint64, error) {
	if s == "" || len(s) > 10 || len(s) > 1 && s[0] == '0' {
		return 0, errors.New("bad decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("bad decimal")
		}
	}
	return strconv.ParseUint(s, 10, 64)
}
