package bolt

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// FuzzDecodeUpstream: whatever an upstream row holds, decoding it gives a
// row that encodes back to itself, or an error wrapping errCorrupt; the
// sweeper's expiry reader agrees with the decoder. Never a panic.
func FuzzDecodeUpstream(f *testing.F) {
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	f.Add(encodeUpstream(upRow{kind: upEntry, e: store.UpstreamEntry{Sealed: []byte("sealed"), Replays: 3, StoredAt: at, ExpiresAt: at.Add(5 * time.Second)}}))
	f.Add(encodeUpstream(upRow{kind: upEntry, e: store.UpstreamEntry{Ref: make([]byte, 32), StoredAt: at, ExpiresAt: at.Add(time.Hour)}}))
	f.Add(encodeUpstream(upRow{kind: upLease, holder: "0123456789abcdef", e: store.UpstreamEntry{StoredAt: at, ExpiresAt: at.Add(9 * time.Second)}}))
	f.Add([]byte{1, 2, 0})
	key := make([]byte, 32)
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeUpstream(key, v)
		ms, xerr := upstreamExpiry(v)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeUpstream: %v", err)
			}
			return
		}
		if xerr != nil || ms != r.e.ExpiresAt.UnixMilli() {
			t.Fatalf("upstreamExpiry %d, %v; the row's expiry %d", ms, xerr, r.e.ExpiresAt.UnixMilli())
		}
		if again, err := decodeUpstream(key, encodeUpstream(r)); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("row %+v: round trip %+v, %v", r, again, err)
		}
	})
}
