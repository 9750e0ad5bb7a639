package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tokengw/tokengw/internal/store"
)

// Issue implements store.Tokens. The slot claim and the token insert are one
// transaction, shared with concurrent writers (group commit).
func (s *Store) Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	if err := s.begin(ctx); err != nil {
		return store.Current{}, false, err
	}
	if len(tok.Hash) == 0 {
		return store.Current{}, false, errors.New("bolt: issue: empty token hash")
	}
	if !validClientID(tok.ClientID) {
		return store.Current{}, false, fmt.Errorf("bolt: issue: client id %q contains NUL", tok.ClientID)
	}
	var ck, cv []byte
	if cur != nil {
		if !bytes.Equal(cur.TokenHash, tok.Hash) {
			return store.Current{}, false, errors.New("bolt: issue: reuse row points at another token")
		}
		if !validClientID(cur.ClientID) {
			return store.Current{}, false, fmt.Errorf("bolt: issue: client id %q contains NUL", cur.ClientID)
		}
		ck, cv = slotKey(cur.ClientID, cur.ReuseKey), encodeCurrent(*cur)
	}
	hash, tv := bytes.Clone(tok.Hash), encodeToken(tok)

	// The committer may run fn more than once (when another write in its
	// transaction fails, the rest run again): results are reset on every run.
	var (
		have    store.Current
		claimed bool
		ctxErr  error
	)
	err := s.write(func(tx *bbolt.Tx) error {
		have, claimed, ctxErr = store.Current{}, false, nil
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil // write nothing; not an error, so the batch is not retried
		}
		if cur != nil {
			curs, idx := tx.Bucket([]byte(bucketCurrent)), tx.Bucket([]byte(bucketCurrentExpiry))
			if v := curs.Get(ck); v != nil {
				old, err := decodeCurrent(ck, v)
				if err != nil {
					return err
				}
				if s.now().Before(old.ReuseUntil) {
					have = old
					return nil
				}
				if err := idx.Delete(expiryKey(old.ReuseUntil, ck)); err != nil {
					return err
				}
			}
			if err := curs.Put(ck, cv); err != nil {
				return err
			}
			if err := idx.Put(expiryKey(cur.ReuseUntil, ck), nil); err != nil {
				return err
			}
			claimed = true
		}
		return putToken(tx, hash, tv, tok.ClientID, tok.ExpiresAt)
	})
	switch {
	case err != nil:
		return store.Current{}, false, s.fail("issue", err)
	case ctxErr != nil:
		return store.Current{}, false, ctxErr
	case claimed:
		c := *cur
		c.TokenHash, c.Sealed = bytes.Clone(c.TokenHash), bytes.Clone(c.Sealed)
		return c, true, nil
	default:
		return have, false, nil // have is zero when cur is nil
	}
}

// putToken writes a tokens row and its index entries (expiry, by_client),
// dropping the entries of a row it replaces.
func putToken(tx *bbolt.Tx, hash, v []byte, clientID string, expiresAt time.Time) error {
	tokens, idx, byClient := tx.Bucket([]byte(bucketTokens)), tx.Bucket([]byte(bucketExpiry)), tx.Bucket([]byte(bucketByClient))
	if old := tokens.Get(hash); old != nil {
		t, err := decodeToken(hash, old)
		if err != nil {
			return err
		}
		if err := idx.Delete(expiryKey(t.ExpiresAt, hash)); err != nil {
			return err
		}
		if err := byClient.Delete(byClientKey(t.ClientID, t.ExpiresAt, hash)); err != nil {
			return err
		}
	}
	if err := tokens.Put(hash, v); err != nil {
		return err
	}
	if err := idx.Put(expiryKey(expiresAt, hash), nil); err != nil {
		return err
	}
	return byClient.Put(byClientKey(clientID, expiresAt, hash), nil)
}

// Current implements store.Tokens.
func (s *Store) Current(ctx context.Context, clientID, reuseKey string) (store.Current, error) {
	if err := s.begin(ctx); err != nil {
		return store.Current{}, err
	}
	if !validClientID(clientID) {
		return store.Current{}, store.ErrNotFound
	}
	k := slotKey(clientID, reuseKey)
	var (
		c     store.Current
		found bool
	)
	err := s.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketCurrent)).Get(k)
		if v == nil {
			return nil
		}
		var err error
		c, err = decodeCurrent(k, v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Current{}, s.fail("current", err)
	}
	if !found || !s.now().Before(c.ReuseUntil) {
		return store.Current{}, store.ErrNotFound
	}
	return c, nil
}

// Token implements store.Tokens.
func (s *Store) Token(ctx context.Context, hash []byte) (store.Token, error) {
	if err := s.begin(ctx); err != nil {
		return store.Token{}, err
	}
	if len(hash) == 0 {
		return store.Token{}, store.ErrNotFound
	}
	var (
		t     store.Token
		found bool
	)
	err := s.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketTokens)).Get(hash)
		if v == nil {
			return nil
		}
		var err error
		t, err = decodeToken(hash, v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Token{}, s.fail("token", err)
	}
	if !found || !s.now().Before(t.ExpiresAt) {
		return store.Token{}, store.ErrNotFound
	}
	return t, nil
}

// Revoke implements store.Tokens. The token row stays, marked revoked, until
// it expires; the reuse row pointing at it is deleted.
func (s *Store) Revoke(ctx context.Context, hash []byte) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if len(hash) == 0 {
		return store.ErrNotFound
	}
	hash = bytes.Clone(hash)
	var notFound bool
	var ctxErr error
	err := s.write(func(tx *bbolt.Tx) error {
		notFound, ctxErr = false, nil
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil
		}
		tokens := tx.Bucket([]byte(bucketTokens))
		v := tokens.Get(hash)
		if v == nil {
			notFound = true
			return nil
		}
		t, err := decodeToken(hash, v)
		if err != nil {
			return err
		}
		if !s.now().Before(t.ExpiresAt) {
			notFound = true
			return nil
		}
		if !t.Revoked {
			t.Revoked = true // same expiry: the index entry stays valid
			if err := tokens.Put(hash, encodeToken(t)); err != nil {
				return err
			}
		}
		if !validClientID(t.ClientID) {
			return nil
		}
		k := slotKey(t.ClientID, t.ReuseKey)
		curs := tx.Bucket([]byte(bucketCurrent))
		cv := curs.Get(k)
		if cv == nil {
			return nil
		}
		c, err := decodeCurrent(k, cv)
		if err != nil {
			return err
		}
		if !bytes.Equal(c.TokenHash, hash) {
			return nil
		}
		return deleteCurrent(tx, k, c.ReuseUntil)
	})
	switch {
	case err != nil:
		return s.fail("revoke", err)
	case ctxErr != nil:
		return ctxErr
	case notFound:
		return store.ErrNotFound
	}
	return nil
}

// deleteCurrent deletes a reuse row and its index entry.
func deleteCurrent(tx *bbolt.Tx, k []byte, reuseUntil time.Time) error {
	if err := tx.Bucket([]byte(bucketCurrent)).Delete(k); err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketCurrentExpiry)).Delete(expiryKey(reuseUntil, k))
}

// clearCurrents deletes every reuse row of a client.
func clearCurrents(tx *bbolt.Tx, clientID string) error {
	prefix := slotKey(clientID, "")
	curs := tx.Bucket([]byte(bucketCurrent))
	type row struct {
		k     []byte
		until time.Time
		ok    bool // decoded: the index entry can be found
	}
	var rows []row
	c := curs.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		cur, err := decodeCurrent(k, v)
		rows = append(rows, row{k: bytes.Clone(k), until: cur.ReuseUntil, ok: err == nil})
	}
	for _, r := range rows {
		if !r.ok { // undecodable: drop the row; the sweeper drops the stale index entry
			if err := curs.Delete(r.k); err != nil {
				return err
			}
			continue
		}
		if err := deleteCurrent(tx, r.k, r.until); err != nil {
			return err
		}
	}
	return nil
}

// ClearCurrents implements store.Tokens.
func (s *Store) ClearCurrents(ctx context.Context, clientID string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if !validClientID(clientID) {
		return nil // no slot can belong to it
	}
	var ctxErr error
	err := s.write(func(tx *bbolt.Tx) error {
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil
		}
		return clearCurrents(tx, clientID)
	})
	if err != nil {
		return s.fail("clear currents", err)
	}
	return ctxErr
}

// RevokeClient implements store.Tokens. It walks the client's by_client
// entries from now on (expiry order) and revokes at most SweepChunk tokens
// per write (each write is committed atomically, in a transaction it may
// share with other writers); every write also deletes the client's reuse
// rows, so no committed state has a reuse row pointing at a token revoked
// here. A token row that does not decode is deleted (an unknown token is as
// inactive as a revoked one), and is counted; entries that point at no
// token, or at a token row rewritten since, are dropped.
func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if !validClientID(clientID) {
		return 0, nil // Issue refuses such ids: no token can belong to it
	}
	prefix := append([]byte(clientID), 0)
	// Live: now < expires_at, in milliseconds: expires_ms >= now_ms+1.
	now := s.now()
	seek := byClientKey(clientID, time.UnixMilli(now.UnixMilli()+1), nil)
	total := 0
	for first := true; ; first = false {
		if !first { // the first check was above
			if err := s.begin(ctx); err != nil {
				return total, err
			}
		}
		var (
			n    int
			next []byte
		)
		err := s.write(func(tx *bbolt.Tx) error {
			var err error
			n, next, err = s.revokeChunk(tx, clientID, prefix, seek, now)
			if err != nil {
				return err
			}
			return clearCurrents(tx, clientID)
		})
		if err != nil {
			return total, s.fail("revoke client", err)
		}
		total += n
		if next == nil {
			return total, nil
		}
		seek = next
	}
}

// revokeChunk revokes up to s.chunk of the tokens whose by_client entries
// start at seek (within prefix). next is where the next chunk starts, nil
// when the client's entries are exhausted.
func (s *Store) revokeChunk(tx *bbolt.Tx, clientID string, prefix, seek []byte, now time.Time) (n int, next []byte, err error) {
	tokens, byClient := tx.Bucket([]byte(bucketTokens)), tx.Bucket([]byte(bucketByClient))
	type entry struct {
		key  []byte
		hash []byte
		exp  uint64
	}
	var entries []entry
	c := byClient.Cursor()
	for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(entries) == s.chunk {
			next = bytes.Clone(k)
			break
		}
		rest := k[len(prefix):]
		if len(rest) < 8 {
			entries = append(entries, entry{key: bytes.Clone(k)}) // malformed: dropped
			continue
		}
		entries = append(entries, entry{key: bytes.Clone(k), hash: bytes.Clone(rest[8:]), exp: binary.BigEndian.Uint64(rest)})
	}
	for _, e := range entries {
		var v []byte
		if len(e.hash) > 0 {
			v = tokens.Get(e.hash)
		}
		if v == nil { // nothing to revoke: drop the stale entry
			if err := byClient.Delete(e.key); err != nil {
				return 0, nil, err
			}
			continue
		}
		t, derr := decodeToken(e.hash, v)
		if derr != nil {
			// Undecodable: delete the row, which makes the token unknown
			// (inactive); the sweeper drops its expiry entry.
			if err := tokens.Delete(e.hash); err != nil {
				return 0, nil, err
			}
			if err := byClient.Delete(e.key); err != nil {
				return 0, nil, err
			}
			n++
			continue
		}
		if t.ClientID != clientID || indexMilli(t.ExpiresAt.UnixMilli()) != e.exp {
			// Left over from a row rewritten since (it has its own entry).
			if err := byClient.Delete(e.key); err != nil {
				return 0, nil, err
			}
			continue
		}
		if t.Revoked || !now.Before(t.ExpiresAt) {
			continue
		}
		t.Revoked = true // same expiry: both index entries stay valid
		if err := tokens.Put(e.hash, encodeToken(t)); err != nil {
			return 0, nil, err
		}
		n++
	}
	return n, next, nil
}

// TokenCount reports how many unexpired tokens (revoked or not) the store
// holds, by the injected clock. For tests and operators; it walks the
// expiry index from now on.
func (s *Store) TokenCount(ctx context.Context) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	// Unexpired: now < expires_at, in milliseconds: expires_ms >= now_ms+1.
	from := expiryKey(time.UnixMilli(s.now().UnixMilli()+1), nil)
	n := 0
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucketExpiry)).Cursor()
		for k, _ := c.Seek(from); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("token count", err)
	}
	return n, nil
}
