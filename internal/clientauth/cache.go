package clientauth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"time"
)

// DefaultCacheEntries is the default bound of the verified-credential cache.
const DefaultCacheEntries = 100_000

// verifiedCache remembers verified (client id, secret, stored hash) triples,
// one entry per client id: the HMAC-SHA256 of (id, secret) under a key made
// at construction, and the stored hash the secret was verified against,
// least recently used evicted first. Only successful verifications insert;
// a lookup that does not match leaves the entry alone, so wrong secrets
// neither fill the cache nor evict anything. Safe for concurrent use.
type verifiedCache struct {
	max    int
	maxAge time.Duration // 0: entries do not age
	now    func() time.Time
	macs   sync.Pool // of *macState: HMAC-SHA256 under the cache key

	mu   sync.Mutex
	lru  list.List // of *cacheEntry, most recently used at the front
	byID map[string]*list.Element
}

type cacheEntry struct {
	id    string
	v     verified
	added time.Time
}

// verified names one (id, secret, stored hash) triple without holding the
// secret: the MAC of (id, secret) and the stored hash itself. The hash is
// compared as it is rather than fed to the MAC: a PHC string is longer than
// an id and a secret together, and hashing it on every request would be
// most of the MAC's cost.
type verified struct {
	mac [sha256.Size]byte
	phc string
}

func newVerifiedCache(max int, maxAge time.Duration, now func() time.Time) (*verifiedCache, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("clientauth: cache key: %w", err)
	}
	c := &verifiedCache{max: max, maxAge: maxAge, now: now, byID: make(map[string]*list.Element)}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return c, nil
}

// macState is a keyed HMAC and a scratch buffer, reused across requests.
type macState struct {
	h   hash.Hash
	buf []byte
	sum []byte
}

// sum names one triple. The id and the secret are length-prefixed, so no
// two pairs share an encoding.
func (c *verifiedCache) sum(id, secret, storedHash string) verified {
	m := c.macs.Get().(*macState)
	buf := m.buf[:0]
	for _, s := range [...]string{id, secret} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	m.h.Reset()
	m.h.Write(buf)
	m.sum = m.h.Sum(m.sum[:0])
	out := verified{mac: [sha256.Size]byte(m.sum), phc: storedHash}
	clear(buf) // the secret does not linger in the pool
	if cap(buf) <= 4096 {
		m.buf = buf
	}
	c.macs.Put(m)
	return out
}

// hit reports whether v is the live entry of id, and marks it used.
func (c *verifiedCache) hit(id string, v verified) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	// The MAC in constant time (it is derived from the secret); the hash
	// is stored data the caller did not choose.
	if subtle.ConstantTimeCompare(e.v.mac[:], v.mac[:]) != 1 || e.v.phc != v.phc {
		return false // a wrong secret, or the hash rotated: leave the entry
	}
	if c.maxAge > 0 && c.now().Sub(e.added) >= c.maxAge {
		c.lru.Remove(el)
		delete(c.byID, id)
		return false
	}
	c.lru.MoveToFront(el)
	return true
}

// add records a verified triple for id, replacing id's previous entry.
func (c *verifiedCache) add(id string, v verified) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		e := el.Value.(*cacheEntry)
		e.v, e.added = v, now
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.byID, oldest.Value.(*cacheEntry).id)
	}
	c.byID[id] = c.lru.PushFront(&cacheEntry{id: id, v: v, added: now})
}

// remove drops id's entry, if any.
func (c *verifiedCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		c.lru.Remove(el)
		delete(c.byID, id)
	}
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
