package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Upstream = (*Store)(nil)

// Buckets of upstream mode's rows (store.Upstream), created by the first
// write, so that a file of a local-mode deployment has none:
//
//	upstream         key (a keyed hash, 32 bytes)          -> upstream record
//	upstream_expiry  expires_at (8-byte BE ms) | key       -> empty (index for the sweeper)
//
// As in Cassandra's upstream_cache table, one bucket holds entries (a
// provider's success, sealed by the caller, with its replay counter),
// index rows (a token → the key of its entry) and leases; the caller's
// keyed hashes never collide across kinds. Every row has an expiry: reads
// judge it against the store's clock, and the sweeper deletes expired rows
// (and their index entries). Where Cassandra uses a lightweight
// transaction (the lease's INSERT IF NOT EXISTS, the replay counter's
// UPDATE IF), the check and the put are one write transaction here, so a
// restart keeps a refresh result and its replay count. A lease is held
// only by the process that took it: the file lock makes a lease of the
// process that had the file before (a crash mid-call) stale, so a lease
// records the Open it was taken under (Store.epoch) and one of another
// Open counts as free.
const (
	bucketUpstream       = "upstream"
	bucketUpstreamExpiry = "upstream_expiry"
)

// Kinds of upstream rows.
const (
	upEntry byte = iota // a sealed response (Sealed), or an index row (Ref)
	upLease             // a lease (holder)
)

// upRow is an upstream record: upstream v1 is version, kind, replays
// (uvarint), stored_at, expires_at, ref, sealed, holder, epoch (8 bytes BE).
type upRow struct {
	kind   byte
	holder string
	epoch  uint64 // leases: the Open that took it
	e      store.UpstreamEntry
}

// newEpoch is a random identity of one Open.
func newEpoch() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return binary.BigEndian.Uint64(b[:])
}

func encodeUpstream(r upRow) []byte {
	b := make([]byte, 0, 32+len(r.e.Ref)+len(r.e.Sealed)+len(r.holder))
	b = append(b, recordV1, r.kind)
	b = binary.AppendUvarint(b, uint64(max(r.e.Replays, 0)))
	b = appendTime(b, r.e.StoredAt)
	b = appendTime(b, r.e.ExpiresAt)
	b = appendBytes(b, r.e.Ref)
	b = appendBytes(b, r.e.Sealed)
	b = appendString(b, r.holder)
	return binary.BigEndian.AppendUint64(b, r.epoch)
}

// decodeUpstream decodes an upstream row; key is its key.
func decodeUpstream(key, v []byte) (upRow, error) {
	rd := reader{b: v}
	rd.version("upstream")
	r := upRow{kind: rd.byte()}
	replays := rd.uvarint()
	r.e = store.UpstreamEntry{Key: bytes.Clone(key), StoredAt: rd.time(), ExpiresAt: rd.time()}
	if ref := rd.raw(); len(ref) > 0 {
		r.e.Ref = bytes.Clone(ref)
	}
	if sealed := rd.raw(); len(sealed) > 0 {
		r.e.Sealed = bytes.Clone(sealed)
	}
	r.holder = rd.string()
	r.epoch = rd.fixed64()
	if err := rd.done("upstream"); err != nil {
		return upRow{}, err
	}
	if r.kind > upLease || replays > 1<<31 {
		return upRow{}, fmt.Errorf("upstream record: %w", errCorrupt)
	}
	r.e.Replays = int(replays)
	return r, nil
}

// upstreamExpiry decodes only the expiry of an upstream row (for the sweeper).
func upstreamExpiry(v []byte) (int64, error) {
	rd := reader{b: v}
	rd.version("upstream")
	rd.byte()
	rd.uvarint()
	rd.varint()
	ms := rd.varint()
	if rd.err != nil {
		return 0, fmt.Errorf("upstream record: %w", rd.err)
	}
	return ms, nil
}

func upstreamExpiryKey(ms int64, key []byte) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, indexMilli(ms))
	return append(k, key...)
}

// upstreamTx is an upstream write's view of its transaction.
type upstreamTx struct {
	rows, idx *bbolt.Bucket
	nowMS     int64
	epoch     uint64 // the Store's
}

func (s *Store) upstreamTx(tx *bbolt.Tx) (upstreamTx, error) {
	rows, err := tx.CreateBucketIfNotExists([]byte(bucketUpstream))
	if err != nil {
		return upstreamTx{}, err
	}
	idx, err := tx.CreateBucketIfNotExists([]byte(bucketUpstreamExpiry))
	if err != nil {
		return upstreamTx{}, err
	}
	return upstreamTx{rows: rows, idx: idx, nowMS: s.now().UnixMilli(), epoch: s.epoch}, nil
}

// live returns key's row if there is one that has not expired. A row this
// build cannot decode is reported (errCorrupt), never taken for absent.
func (u upstreamTx) live(key []byte) (upRow, bool, error) {
	v := u.rows.Get(key)
	if v == nil {
		return upRow{}, false, nil
	}
	r, err := decodeUpstream(key, v)
	if err != nil {
		return upRow{}, false, err
	}
	return r, u.nowMS < r.e.ExpiresAt.UnixMilli(), nil
}

// put writes a row, replacing key's row and its index entry.
func (u upstreamTx) put(key []byte, r upRow) error {
	if err := u.delete(key); err != nil {
		return err
	}
	if err := u.rows.Put(key, encodeUpstream(r)); err != nil {
		return err
	}
	return u.idx.Put(upstreamExpiryKey(r.e.ExpiresAt.UnixMilli(), key), nil)
}

// delete removes key's row and its index entry (a missing row is fine).
func (u upstreamTx) delete(key []byte) error {
	v := u.rows.Get(key)
	if v == nil {
		return nil
	}
	if ms, err := upstreamExpiry(v); err == nil {
		if err := u.idx.Delete(upstreamExpiryKey(ms, key)); err != nil {
			return err
		}
	}
	return u.rows.Delete(key)
}

func validUpstreamKey(key []byte) error {
	if len(key) == 0 || len(key) > 255 {
		return errors.New("bolt: upstream: key must be 1 to 255 bytes")
	}
	return nil
}

// upstreamWrite runs fn in a group-committed write with the upstream
// buckets. The committer may run fn more than once: fn resets its results
// on every run.
func (s *Store) upstreamWrite(ctx context.Context, op string, key []byte, fn func(u upstreamTx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if key != nil {
		if err := validUpstreamKey(key); err != nil {
			return err
		}
	}
	var ctxErr error
	err := s.write(func(tx *bbolt.Tx) error {
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil
		}
		u, err := s.upstreamTx(tx)
		if err != nil {
			return err
		}
		return fn(u)
	})
	if err != nil {
		return s.fail(op, err)
	}
	return ctxErr
}

// UpstreamLease implements store.Upstream: the check and the put are one
// write transaction, so one of any number of concurrent callers gets it.
func (s *Store) UpstreamLease(ctx context.Context, key []byte, holder string, ttl time.Duration) (bool, error) {
	var got bool
	err := s.upstreamWrite(ctx, "upstream lease", key, func(u upstreamTx) error {
		got = false
		r, live, err := u.live(key)
		if err != nil || live && (r.kind != upLease || r.epoch == u.epoch) {
			return err // held (or, never for the caller's keys, an entry)
		}
		now := time.UnixMilli(u.nowMS)
		got = true
		return u.put(key, upRow{kind: upLease, holder: holder, epoch: u.epoch, e: store.UpstreamEntry{StoredAt: now, ExpiresAt: now.Add(ttl)}})
	})
	return got && err == nil, err
}

// UpstreamRelease implements store.Upstream.
func (s *Store) UpstreamRelease(ctx context.Context, key []byte, holder string) error {
	return s.upstreamWrite(ctx, "upstream release", key, func(u upstreamTx) error {
		r, _, err := u.live(key)
		if err != nil || r.kind != upLease || r.holder != holder {
			return err
		}
		return u.delete(key)
	})
}

// PutUpstream implements store.Upstream: every entry in one write
// transaction (one fsync). An entry that has expired already is not
// written.
func (s *Store) PutUpstream(ctx context.Context, entries ...store.UpstreamEntry) error {
	for _, e := range entries {
		if err := validUpstreamKey(e.Key); err != nil {
			return err
		}
	}
	return s.upstreamWrite(ctx, "upstream put", nil, func(u upstreamTx) error {
		for _, e := range entries {
			if u.nowMS >= e.ExpiresAt.UnixMilli() {
				continue
			}
			e.Replays = 0 // a new result starts its count, as Cassandra's put does
			if err := u.put(e.Key, upRow{kind: upEntry, e: e}); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpstreamEntry implements store.Upstream.
func (s *Store) UpstreamEntry(ctx context.Context, key []byte) (store.UpstreamEntry, error) {
	if err := s.begin(ctx); err != nil {
		return store.UpstreamEntry{}, err
	}
	var r upRow
	found := false
	err := s.view(func(tx *bbolt.Tx) error {
		rows := tx.Bucket([]byte(bucketUpstream))
		if rows == nil {
			return nil
		}
		var err error
		r, found, err = upstreamTx{rows: rows, nowMS: s.now().UnixMilli()}.live(key)
		return err
	})
	switch {
	case err != nil:
		return store.UpstreamEntry{}, s.fail("upstream get", err)
	case !found || r.kind != upEntry:
		return store.UpstreamEntry{}, store.ErrNotFound
	}
	return r.e, nil
}

// TakeUpstreamReplay implements store.Upstream: the check of the counter
// and its increment are one write transaction.
func (s *Store) TakeUpstreamReplay(ctx context.Context, key []byte, max int) (store.UpstreamEntry, bool, error) {
	var out store.UpstreamEntry
	var took, found bool
	err := s.upstreamWrite(ctx, "upstream replay", key, func(u upstreamTx) error {
		out, took, found = store.UpstreamEntry{}, false, false
		r, live, err := u.live(key)
		if err != nil || !live || r.kind != upEntry {
			return err
		}
		found, out = true, r.e
		if r.e.Replays >= max {
			return nil
		}
		r.e.Replays++
		took, out = true, r.e
		return u.rows.Put(key, encodeUpstream(r)) // same expiry: the index entry stands
	})
	switch {
	case err != nil:
		return store.UpstreamEntry{}, false, err
	case !found:
		return store.UpstreamEntry{}, false, store.ErrNotFound
	}
	return out, took, nil
}

// DeleteUpstream implements store.Upstream.
func (s *Store) DeleteUpstream(ctx context.Context, keys ...[]byte) error {
	if len(keys) == 0 {
		return s.begin(ctx)
	}
	return s.upstreamWrite(ctx, "upstream delete", nil, func(u upstreamTx) error {
		for _, k := range keys {
			if err := u.delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
