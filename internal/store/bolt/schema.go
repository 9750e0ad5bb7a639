package bolt

import (
	"bytes"
	"fmt"
	"runtime/debug"

	"go.etcd.io/bbolt"
)

// schemaVersion is the bucket layout written in meta/schema. Version 1
// lacked by_client; Open upgrades such a file (migrateV1).
const (
	schemaVersion byte = 2
	schemaV1      byte = 1
)

// Bucket names, and meta's key.
const (
	bucketTokens        = "tokens"
	bucketCurrent       = "current"
	bucketClients       = "clients"
	bucketExpiry        = "expiry"
	bucketByClient      = "by_client"
	bucketCurrentExpiry = "current_expiry"
	bucketMeta          = "meta"
	keySchema           = "schema"
)

// bucketNames lists every bucket of the layout.
func bucketNames() [7]string {
	return [...]string{bucketTokens, bucketCurrent, bucketClients, bucketExpiry, bucketByClient, bucketCurrentExpiry, bucketMeta}
}

// setUp runs initSchema on a database just opened, with a panic or memory
// fault on a damaged page turned into an error wrapping ErrCorrupt; on any
// error it closes db.
func setUp(db *bbolt.DB, path string, chunk int) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = damaged(path, fmt.Sprintf("reading it failed: %v", p))
		}
		if err != nil {
			closeAfterPanic(db)
		}
	}()
	if err := initSchema(db, chunk); err != nil {
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return nil
}

// closeAfterPanic closes db, which may itself panic after a damaged page.
func closeAfterPanic(db *bbolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}

// initSchema creates the buckets, checks the layout version and upgrades a
// version-1 file.
func initSchema(db *bbolt.DB, chunk int) error {
	var version byte
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range bucketNames() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte(bucketMeta))
		switch v := meta.Get([]byte(keySchema)); {
		case v == nil:
			if k, _ := tx.Bucket([]byte(bucketTokens)).Cursor().First(); k != nil {
				version = schemaV1 // tokens but no version: index them to be safe
				return nil
			}
			version = schemaVersion // a new file
			return meta.Put([]byte(keySchema), []byte{schemaVersion})
		case len(v) == 1 && (v[0] == schemaVersion || v[0] == schemaV1):
			version = v[0]
			return nil
		default:
			return fmt.Errorf("unsupported schema version %v (this build reads %d and upgrades %d)", v, schemaVersion, schemaV1)
		}
	})
	if err != nil || version == schemaVersion {
		return err
	}
	return migrateV1(db, chunk)
}

// migrateV1 upgrades a version-1 file: it adds a by_client entry for every
// token, at most chunk tokens per transaction, and then writes version 2.
// Open holds the file lock, so nothing else writes meanwhile; an upgrade cut
// short (a crash) leaves version 1 and is redone from the start at the next
// Open (the entries are idempotent puts). Tokens that do not decode get no
// entry: RevokeClient cannot revoke them, as Revoke cannot.
func migrateV1(db *bbolt.DB, chunk int) error {
	var after []byte // the last token key indexed
	for done := false; !done; {
		err := db.Update(func(tx *bbolt.Tx) error {
			tokens, byClient := tx.Bucket([]byte(bucketTokens)), tx.Bucket([]byte(bucketByClient))
			c := tokens.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == chunk {
					return nil
				}
				n++
				after = bytes.Clone(k)
				t, err := decodeToken(k, v)
				if err != nil || !validClientID(t.ClientID) {
					continue
				}
				if err := byClient.Put(byClientKey(t.ClientID, t.ExpiresAt, k), nil); err != nil {
					return err
				}
			}
			done = true
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), []byte{schemaVersion})
		})
		if err != nil {
			return fmt.Errorf("upgrade schema %d to %d: %w", schemaV1, schemaVersion, err)
		}
	}
	return nil
}
