package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// Record encoding. Every value starts with a version byte; the fields that
// follow are, in order (uvarint-length-prefixed for strings and byte
// strings, zig-zag varint unix milliseconds for times):
//
//	token   v1: version, flags (bit 0 revoked), issued_at, expires_at,
//	            client_id, scope, reuse_key          (key: the token hash)
//	current v1: version, token_hash, sealed, scope, issued_at, expires_at,
//	            reuse_until                          (key: client_id 0x00 reuse_key)
//	client  v1: version, flags (bit 0 introspect, bit 1 has limit),
//	            secret_hash, n scopes + scopes, token_ttl (varint ns),
//	            [limit rate (float64 bits, 8 bytes BE), limit burst (varint)],
//	            created_at, updated_at,
//	            [auth_method, jwks, jwks_uri, n resources + resources]
//	                                                 (key: client_id)
//
// A client record's trailing auth part is present when flag bit 2 is set
// (a private_key_jwt client or one with resources); records written before
// it existed lack the bit and read as they always did.
//
// Expiry index keys are 8-byte big-endian unix milliseconds followed by the
// key of the row they point at, so a cursor walks them in expiry order.
// by_client keys put the client id and a NUL before that (byClientKey).

const (
	recordV1 byte = 1

	tokenRevoked byte = 1 << 0

	clientIntrospect byte = 1 << 0
	clientHasLimit   byte = 1 << 1
	clientHasAuth    byte = 1 << 2
)

// clientKnownFlags are the flag bits this version writes; a record with
// any other bit set is from a newer version and is not guessed at.
const clientKnownFlags = clientIntrospect | clientHasLimit | clientHasAuth

// errCorrupt marks a record or key this version cannot decode.
var errCorrupt = errors.New("bolt: corrupt or unknown record")

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendVarint(b, t.UnixMilli())
}

// reader decodes a record; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) fixed64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// raw returns the next length-prefixed field, aliasing the record.
func (r *reader) raw() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// bytes returns a copy of the next length-prefixed field (bbolt's memory is
// valid only inside the transaction).
func (r *reader) bytes() []byte { return bytes.Clone(r.raw()) }

func (r *reader) string() string { return string(r.raw()) }

func (r *reader) time() time.Time {
	t := time.UnixMilli(r.varint()).UTC()
	if t.IsZero() {
		return time.Time{}
	}
	return t
}

func (r *reader) version(kind string) {
	if v := r.byte(); r.err == nil && v != recordV1 {
		r.err = fmt.Errorf("%w: %s record version %d", errCorrupt, kind, v)
	}
}

// done reports the first decoding error, or trailing garbage.
func (r *reader) done(kind string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = errCorrupt
	}
	if r.err != nil {
		return fmt.Errorf("%s record: %w", kind, r.err)
	}
	return nil
}

func encodeToken(t store.Token) []byte {
	b := make([]byte, 0, 32+len(t.ClientID)+len(t.Scope)+len(t.ReuseKey))
	var flags byte
	if t.Revoked {
		flags |= tokenRevoked
	}
	b = append(b, recordV1, flags)
	b = appendTime(b, t.IssuedAt)
	b = appendTime(b, t.ExpiresAt)
	b = appendString(b, t.ClientID)
	b = appendString(b, t.Scope)
	return appendString(b, t.ReuseKey)
}

// decodeToken decodes a tokens row; hash is its key.
func decodeToken(hash, v []byte) (store.Token, error) {
	r := reader{b: v}
	r.version("token")
	flags := r.byte()
	t := store.Token{
		Hash:      bytes.Clone(hash),
		Revoked:   flags&tokenRevoked != 0,
		IssuedAt:  r.time(),
		ExpiresAt: r.time(),
		ClientID:  r.string(),
		Scope:     r.string(),
		ReuseKey:  r.string(),
	}
	if err := r.done("token"); err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// tokenExpiry decodes only the expiry of a tokens row (for the sweeper).
func tokenExpiry(v []byte) (int64, error) {
	r := reader{b: v}
	r.version("token")
	r.byte()
	r.varint()
	ms := r.varint()
	if r.err != nil {
		return 0, fmt.Errorf("token record: %w", r.err)
	}
	return ms, nil
}

func encodeCurrent(c store.Current) []byte {
	b := make([]byte, 0, 64+len(c.TokenHash)+len(c.Sealed)+len(c.Scope))
	b = append(b, recordV1)
	b = appendBytes(b, c.TokenHash)
	b = appendBytes(b, c.Sealed)
	b = appendString(b, c.Scope)
	b = appendTime(b, c.IssuedAt)
	b = appendTime(b, c.ExpiresAt)
	return appendTime(b, c.ReuseUntil)
}

// decodeCurrent decodes a current row; key is its slot key.
func decodeCurrent(key, v []byte) (store.Current, error) {
	clientID, reuseKey, ok := splitSlotKey(key)
	if !ok {
		return store.Current{}, fmt.Errorf("current key: %w", errCorrupt)
	}
	r := reader{b: v}
	r.version("current")
	c := store.Current{
		ClientID:   clientID,
		ReuseKey:   reuseKey,
		TokenHash:  r.bytes(),
		Sealed:     r.bytes(),
		Scope:      r.string(),
		IssuedAt:   r.time(),
		ExpiresAt:  r.time(),
		ReuseUntil: r.time(),
	}
	if err := r.done("current"); err != nil {
		return store.Current{}, err
	}
	return c, nil
}

func encodeClient(c store.Client) []byte {
	b := make([]byte, 0, 64+len(c.SecretHash)+8*len(c.Scopes))
	var flags byte
	if c.Introspect {
		flags |= clientIntrospect
	}
	if c.Limit != nil {
		flags |= clientHasLimit
	}
	hasAuth := c.AuthMethod != "" || c.JWKS != "" || c.JWKSURI != "" || len(c.Resources) > 0
	if hasAuth {
		flags |= clientHasAuth
	}
	b = append(b, recordV1, flags)
	b = appendString(b, c.SecretHash)
	b = binary.AppendUvarint(b, uint64(len(c.Scopes)))
	for _, s := range c.Scopes {
		b = appendString(b, s)
	}
	b = binary.AppendVarint(b, int64(c.TokenTTL))
	if c.Limit != nil {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.Limit.Rate))
		b = binary.AppendVarint(b, int64(c.Limit.Burst))
	}
	b = appendTime(b, c.CreatedAt)
	b = appendTime(b, c.UpdatedAt)
	if hasAuth {
		b = appendString(b, c.AuthMethod)
		b = appendString(b, c.JWKS)
		b = appendString(b, c.JWKSURI)
		b = binary.AppendUvarint(b, uint64(len(c.Resources)))
		for _, r := range c.Resources {
			b = appendString(b, r)
		}
	}
	return b
}

// decodeClient decodes a clients row; id is its key.
func decodeClient(id, v []byte) (store.Client, error) {
	r := reader{b: v}
	r.version("client")
	flags := r.byte()
	c := store.Client{
		ID:         string(id),
		Introspect: flags&clientIntrospect != 0,
		SecretHash: r.string(),
	}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // each scope takes at least one byte
		r.fail()
	}
	if n > 0 && r.err == nil {
		c.Scopes = make([]string, 0, n)
		for range n {
			c.Scopes = append(c.Scopes, r.string())
		}
	}
	c.TokenTTL = time.Duration(r.varint())
	if flags&clientHasLimit != 0 {
		c.Limit = &store.Limit{Rate: math.Float64frombits(r.fixed64()), Burst: int(r.varint())}
		// A rate that is not a finite number >= 0 was never written by
		// this store; read as a limit, NaN would mean unlimited.
		if math.IsNaN(c.Limit.Rate) || math.IsInf(c.Limit.Rate, 0) || c.Limit.Rate < 0 {
			r.fail()
		}
	}
	c.CreatedAt = r.time()
	c.UpdatedAt = r.time()
	if flags&clientHasAuth != 0 {
		c.AuthMethod = r.string()
		c.JWKS = r.string()
		c.JWKSURI = r.string()
		n := r.uvarint()
		if n > uint64(len(r.b)) { // each resource takes at least one byte
			r.fail()
		}
		if n > 0 && r.err == nil {
			c.Resources = make([]string, 0, n)
			for range n {
				c.Resources = append(c.Resources, r.string())
			}
		}
	}
	if flags&^clientKnownFlags != 0 {
		r.fail()
	}
	if err := r.done("client"); err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// slotKey is the current bucket's key: client_id 0x00 reuse_key. Client
// ids are VSCHAR (RFC 6749 Appendix A.1), so the first 0x00 separates the
// two and client_id 0x00 is a prefix that matches one client's rows only.
func slotKey(clientID, reuseKey string) []byte {
	k := make([]byte, 0, len(clientID)+1+len(reuseKey))
	k = append(k, clientID...)
	k = append(k, 0)
	return append(k, reuseKey...)
}

func splitSlotKey(k []byte) (clientID, reuseKey string, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", "", false
	}
	return string(k[:i]), string(k[i+1:]), true
}

// validClientID reports whether id can be part of a slot key.
func validClientID(id string) bool {
	return strings.IndexByte(id, 0) < 0
}

// byClientKey is a by_client index key: client_id 0x00, 8-byte big-endian
// unix milliseconds of the expiry (as expiryKey), token hash. client_id 0x00
// is a prefix that matches one client's entries only (validClientID), and
// within it the entries sort by expiry, so a client's live tokens are one
// range starting at now.
func byClientKey(clientID string, expiresAt time.Time, hash []byte) []byte {
	k := make([]byte, 0, len(clientID)+1+8+len(hash))
	k = append(k, clientID...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, indexMilli(expiresAt.UnixMilli()))
	return append(k, hash...)
}

// expiryKey is an index key: 8-byte big-endian unix milliseconds (times
// before 1970 clamp to 0, they sort first and are swept first) + row key.
func expiryKey(t time.Time, rowKey []byte) []byte {
	k := make([]byte, 8, 8+len(rowKey))
	binary.BigEndian.PutUint64(k, indexMilli(t.UnixMilli()))
	return append(k, rowKey...)
}

func indexMilli(ms int64) uint64 {
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}
