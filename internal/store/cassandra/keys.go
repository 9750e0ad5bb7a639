package cassandra

import (
	"context"
	"fmt"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Keys = (*Store)(nil)

// keyRing is the partition of signing_keys that holds the ring: one
// partition, so reading the ring is one query and every slot claim is a
// lightweight transaction within it.
const keyRing = "jwt"

// signingKeysTable is the CQL of the signing key ring. The rotation slot is
// the clustering key: a key is added with INSERT ... IF NOT EXISTS on its
// slot, so among replicas that decide at once that a scheduled rotation is
// due ("successor/<kid>"), exactly one adds a key. Rows are few (a handful
// of keys) and deleted by the ring once nothing they signed can be live;
// no TTL, no TWCS.
func signingKeysTable(ks string) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.signing_keys (
  ring        text,
  slot        text,
  kid         text,
  alg         text,
  sealed      blob,
  public_key  blob,
  created_at  timestamp,
  activate_at timestamp,
  PRIMARY KEY ((ring), slot)
) WITH comment = 'tokengw: JWT signing key ring; private keys sealed with store.seal_keys; added with INSERT IF NOT EXISTS per rotation slot'`, ks)
}

const (
	keyCols        = `slot, kid, alg, sealed, public_key, created_at, activate_at`
	qSelectKeys    = `SELECT ` + keyCols + ` FROM signing_keys WHERE ring = ?`
	qInsertKey     = `INSERT INTO signing_keys (ring, ` + keyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`
	qDeleteKeySlot = `DELETE FROM signing_keys WHERE ring = ? AND slot = ?`
)

// SigningKeys implements store.Keys. It reads at a quorum at least, so it
// sees every key whose lightweight transaction has committed.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	if s.errClosed() {
		return nil, store.ErrClosed
	}
	iter := s.session.Query(qSelectKeys, keyRing).Consistency(s.slotReadCons).Idempotent(true).IterContext(ctx)
	out := []store.SigningKey{}
	var k store.SigningKey
	for iter.Scan(&k.Slot, &k.ID, &k.Alg, &k.Sealed, &k.Public, &k.CreatedAt, &k.ActivateAt) {
		out = append(out, k)
		k = store.SigningKey{}
	}
	if err := iter.Close(); err != nil {
		return nil, classify("signing keys", err)
	}
	return out, nil
}

// AddSigningKey implements store.Keys with INSERT ... IF NOT EXISTS (Paxos):
// exactly one of any number of concurrent callers for a slot adds its key.
// It is not retried (a retried compare-and-set can report "not applied"
// against its own first attempt); a caller that gets an error re-reads the
// ring.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) (bool, error) {
	if s.errClosed() {
		return false, store.ErrClosed
	}
	applied, err := s.session.Query(qInsertKey, keyRing, k.Slot, k.ID, k.Alg, k.Sealed, k.Public,
		k.CreatedAt, k.ActivateAt).MapScanCASContext(ctx, map[string]any{})
	if err != nil {
		return false, classify("add signing key", err)
	}
	return applied, nil
}

// DeleteSigningKey implements store.Keys.
func (s *Store) DeleteSigningKey(ctx context.Context, slot string) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	err := s.session.Query(qDeleteKeySlot, keyRing, slot).Idempotent(true).ExecContext(ctx)
	return classify("delete signing key", err)
}
