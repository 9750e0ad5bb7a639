package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
)

// sweepTarget is one expiry index and the rows it points at.
type sweepTarget struct {
	index, rows string
	// expiry decodes a row's expiry (unix ms) to check that the index
	// entry is the row's own and not left over from a replaced row.
	expiry func(key, v []byte) (int64, error)
	// unindex, if set, deletes the row's other index entries (in the
	// sweep's transaction) before the row goes.
	unindex func(tx *bbolt.Tx, key, v []byte) error
}

// sweepTargets lists what Sweep walks: tokens, reuse rows, then upstream
// mode's rows (upstream.go; their buckets exist once written).
func sweepTargets() [3]sweepTarget {
	return [...]sweepTarget{
		{index: bucketExpiry, rows: bucketTokens, expiry: func(_, v []byte) (int64, error) {
			return tokenExpiry(v)
		}, unindex: unindexToken},
		{index: bucketCurrentExpiry, rows: bucketCurrent, expiry: func(k, v []byte) (int64, error) {
			c, err := decodeCurrent(k, v)
			return c.ReuseUntil.UnixMilli(), err
		}},
		{index: bucketUpstreamExpiry, rows: bucketUpstream, expiry: func(_, v []byte) (int64, error) {
			return upstreamExpiry(v)
		}},
	}
}

// unindexToken deletes a token's by_client entry. A row whose client id
// does not decode has no entry this can find; it is deleted all the same.
func unindexToken(tx *bbolt.Tx, hash, v []byte) error {
	t, err := decodeToken(hash, v)
	if err != nil {
		return nil
	}
	return tx.Bucket([]byte(bucketByClient)).Delete(byClientKey(t.ClientID, t.ExpiresAt, hash))
}

// Sweep deletes the tokens (with their by_client entries), reuse rows and
// upstream rows that have expired by the store's clock, walking the expiry indexes oldest
// first, at most SweepChunk index entries per write transaction, until none
// is left or ctx ends. It returns the number of rows (tokens, reuse rows
// and upstream rows) deleted. Revoked tokens are deleted once expired,
// like the others.
// The background sweeper calls it every SweepInterval; tests and operators
// may call it at any time.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for _, target := range sweepTargets() {
		for {
			if err := s.begin(ctx); err != nil {
				return total, err
			}
			n, more, err := s.sweepChunk(target)
			total += n
			if err != nil {
				return total, s.fail("sweep", err)
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

// sweepChunk deletes up to s.chunk expired index entries and their rows in
// one transaction; more reports that the chunk was full.
func (s *Store) sweepChunk(target sweepTarget) (deleted int, more bool, err error) {
	now := indexMilli(s.now().UnixMilli()) // expired: expires_ms <= now_ms
	err = safeUpdate(s.db, func(tx *bbolt.Tx) error {
		deleted, more = 0, false
		idx, rows := tx.Bucket([]byte(target.index)), tx.Bucket([]byte(target.rows))
		if idx == nil || rows == nil {
			return nil // buckets made on first use, not used yet
		}
		var keys [][]byte
		c := idx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(keys) == s.chunk {
				more = true
				break
			}
			if len(k) >= 8 && binary.BigEndian.Uint64(k) > now {
				break
			}
			keys = append(keys, bytes.Clone(k)) // malformed (< 8 bytes) entries go too
		}
		for _, k := range keys {
			if err := idx.Delete(k); err != nil {
				return err
			}
			if len(k) <= 8 {
				continue
			}
			rowKey := k[8:]
			v := rows.Get(rowKey)
			if v == nil {
				continue // row already gone (revoked reuse row, cleared slot)
			}
			ms, err := target.expiry(rowKey, v)
			if err != nil || indexMilli(ms) != binary.BigEndian.Uint64(k) {
				// Undecodable rows are left for an operator; a row
				// rewritten with another expiry has its own entry.
				continue
			}
			if target.unindex != nil {
				if err := target.unindex(tx, rowKey, v); err != nil {
					return err
				}
			}
			if err := rows.Delete(rowKey); err != nil {
				return err
			}
			deleted++
		}
		return nil
	})
	return deleted, more, err
}

// sweepLoop runs Sweep every interval until ctx ends (Close).
func (s *Store) sweepLoop(ctx context.Context, interval time.Duration) {
	defer close(s.sweepDone)
	debug.SetPanicOnFault(true) // a fault on a damaged page fails the sweep, see safeUpdate
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.Sweep(ctx)
			if ctx.Err() != nil {
				return
			}
			if s.onSweep != nil {
				s.onSweep(n, err)
			}
		}
	}
}
