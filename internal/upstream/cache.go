package upstream

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Key kinds: the first input of every keyed hash, so a hash of one kind
// never equals one of another.
const (
	kindCC       = "cc"    // a client_credentials request
	kindRefresh  = "rt"    // a refresh token presented in a refresh_token grant
	kindRequest  = "rq"    // the rest of a refresh request (credentials, fields)
	kindIndex    = "ix"    // a token handed out, pointing at the entry that holds it
	kindLease    = "lease" // the lease of an entry's key
	kindNegative = "neg"   // a refresh request refused with invalid_grant (negative.go)
	cacheKeyCtx  = "tokengw upstream cache key v1"
)

// DeriveCacheKey derives the key of upstream mode's keyed hashes from a
// seal key (the first of store.seal_keys, which every replica shares):
// HMAC-SHA256(sealKey, "tokengw upstream cache key v1"). A separate key,
// so no hash is ever computed under the AES key itself.
func DeriveCacheKey(sealKey []byte) []byte {
	m := hmac.New(sha256.New, sealKey)
	m.Write([]byte(cacheKeyCtx))
	return m.Sum(nil)
}

// cacheKey is a keyed hash: the key of an entry, an index row or a lease.
type cacheKey = [sha256.Size]byte

// hasher makes keyed hashes of length-prefixed fields, so ("ab","c") and
// ("a","bc") differ. A hash is built field by field into pooled state
// (start, add, finish), so the hot path allocates nothing for it.
type hasher struct {
	key  []byte
	pool sync.Pool // *hashState
}

// hashState is one hash being built; it belongs to one goroutine between
// start and finish.
type hashState struct {
	mac hash.Hash
	buf []byte   // the length-prefixed fields so far
	out cacheKey // where the MAC is summed
}

func newHasher(key []byte) *hasher {
	h := &hasher{key: key}
	h.pool.New = func() any { return &hashState{mac: hmac.New(sha256.New, h.key), buf: make([]byte, 0, 512)} }
	return h
}

// start begins a hash; add its fields in order, then finish it.
func (h *hasher) start() *hashState {
	st := h.pool.Get().(*hashState)
	st.buf = st.buf[:0]
	return st
}

// add appends one field.
func (st *hashState) add(f string) {
	st.buf = binary.AppendUvarint(st.buf, uint64(len(f)))
	st.buf = append(st.buf, f...)
}

// finish sums the fields added and hands the state back to the pool.
func (h *hasher) finish(st *hashState) cacheKey {
	st.mac.Reset()
	st.mac.Write(st.buf)
	st.mac.Sum(st.out[:0])
	out := st.out
	clear(st.buf) // it held the presented credentials: they do not linger in the pool
	if cap(st.buf) > 4096 {
		st.buf = make([]byte, 0, 512) // one huge request does not pin its buffer
	}
	h.pool.Put(st)
	return out
}

// sum is the keyed hash of fields, as a slice (for the store).
func (h *hasher) sum(fields ...string) []byte {
	st := h.start()
	for _, f := range fields {
		st.add(f)
	}
	k := h.finish(st)
	return k[:]
}

// cached is a provider's success as tokengw keeps it: the response members
// (without expires_in) encoded once, the times it is judged by, and the
// fingerprint of the request it answered (refresh results).
type cached struct {
	Body     json.RawMessage `json:"b"`           // the members but expires_in, a JSON object
	IssuedAt int64           `json:"i"`           // unix ms: when the request left for the provider
	Expires  int64           `json:"e,omitempty"` // unix ms: IssuedAt + expires_in; 0 = the provider sent none
	Request  []byte          `json:"r,omitempty"` // refresh results: the request fingerprint
}

func (c cached) issuedAt() time.Time { return time.UnixMilli(c.IssuedAt) }
func (c cached) expires() time.Time  { return time.UnixMilli(c.Expires) }

// newCached encodes a success received for a request sent at sent. The
// members are written sorted (encoding/json sorts map keys), so every
// caller of one result gets the same bytes.
func newCached(s success, sent time.Time, request []byte) (cached, error) {
	// The provider's bytes as they were (no HTML escaping added).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s.fields); err != nil {
		return cached{}, err
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	c := cached{Body: body, IssuedAt: sent.UnixMilli(), Request: request}
	if s.expiresIn >= 0 {
		c.Expires = sent.Add(time.Duration(s.expiresIn) * time.Second).UnixMilli()
	}
	return c, nil
}

var errBadEntry = errors.New("upstream: cached entry is not readable")

// render writes the response: the stored members with expires_in put back
// (when the provider sent one), as one JSON object.
func (c cached) render(expiresIn int64) []byte {
	if c.Expires == 0 || len(c.Body) < 2 {
		return append(slices.Clip(c.Body), '\n')
	}
	b := make([]byte, 0, len(c.Body)+24)
	b = append(b, c.Body[:len(c.Body)-1]...) // without the closing brace
	if len(c.Body) > 2 {
		b = append(b, ',')
	}
	b = append(b, `"expires_in":`...)
	b = strconv.AppendInt(b, expiresIn, 10)
	return append(b, "}\n"...)
}

// l1Entry is a client_credentials entry in this process. It is never
// modified once in the map but for last, the latest rendering.
type l1Entry struct {
	c       cached
	checked time.Time // when the store last confirmed it
	last    atomic.Pointer[rendering]
}

// rendering is an entry's response for one expires_in: expires_in moves
// once a second, so every hit within that second shares one body (never
// modified) instead of copying the response per hit.
type rendering struct {
	expiresIn int64
	body      []byte
}

// body is the entry's response with expires_in.
func (e *l1Entry) body(expiresIn int64) []byte {
	if r := e.last.Load(); r != nil && r.expiresIn == expiresIn {
		return r.body
	}
	r := &rendering{expiresIn: expiresIn, body: e.c.render(expiresIn)}
	e.last.Store(r)
	return r.body
}

// l1 is the in-process cache of client_credentials entries, bounded by
// entries (an arbitrary entry leaves when it is full), and of the index of
// the tokens they hold (for revocation).
type l1 struct {
	mu      sync.RWMutex
	max     int
	entries map[cacheKey]*l1Entry
	index   map[cacheKey]cacheKey // index key -> entry key
}

func newL1(max int) *l1 {
	return &l1{max: max, entries: map[cacheKey]*l1Entry{}, index: map[cacheKey]cacheKey{}}
}

// keyOf is a store key (a keyed hash as bytes) as a cacheKey.
func keyOf(b []byte) (k cacheKey) {
	copy(k[:], b)
	return k
}

func (l *l1) get(key cacheKey) *l1Entry {
	l.mu.RLock()
	e := l.entries[key]
	l.mu.RUnlock()
	return e
}

func (l *l1) put(key cacheKey, c cached, checked time.Time, index [][]byte) {
	e := &l1Entry{c: c, checked: checked}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.entries[key]; !ok && len(l.entries) >= l.max {
		for k := range l.entries {
			delete(l.entries, k)
			break
		}
	}
	if len(l.index) >= 2*l.max {
		clear(l.index) // index rows only speed up revocation; the store has them too
	}
	l.entries[key] = e
	for _, ix := range index {
		l.index[keyOf(ix)] = key
	}
}

func (l *l1) drop(key cacheKey) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// forget drops the entry an index key points at, returning its key.
func (l *l1) forget(ix cacheKey) (cacheKey, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.index[ix]
	if !ok {
		return cacheKey{}, false
	}
	delete(l.index, ix)
	delete(l.entries, k)
	return k, true
}
