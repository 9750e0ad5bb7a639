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

// verifiedCache remembers verified (client id, secret, stored hash) triples
// as HMAC-SHA256 under a key made at construction, one entry per client id,
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
	mac   [sha256.Size]byte
	added time.Time
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

// sum is the MAC of one triple. Each part is length-prefixed so no two
// triples share an encoding.
func (c *verifiedCache) sum(id, secret, storedHash string) [sha256.Size]byte {
	m := c.macs.Get().(*macState)
	buf := m.buf[:0]
	for _, s := range [...]string{id, secret, storedHash} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	m.h.Reset()
	m.h.Write(buf)
	m.sum = m.h.Sum(m.sum[:0])
	out := [sha256.Size]byte(m.sum)
	clear(buf) // the secret does not linger in the pool
	if cap(buf) <= 4096 {
		m.buf = buf
	}
	c.macs.Put(m)
	return out
}

// hit reports whether mac is the live entry of id, and marks it used.
func (c *verifiedCache) hit(id string, mac [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if subtle.ConstantTimeCompare(e.mac[:], mac[:]) != 1 {
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
func (c *verifiedCache) add(id string, mac [sha256.Size]byte) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		e := el.Value.(*cacheEntry)
		e.mac, e.added = mac, now
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.byID, oldest.Value.(*cacheEntry).id)
	}
	c.byID[id] = c.lru.PushFront(&cacheEntry{id: id, mac: mac, added: now})
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
