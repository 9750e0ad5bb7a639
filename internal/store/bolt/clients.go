package bolt

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tokengw/tokengw/internal/store"
)

// Client implements store.Clients.
func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	if err := s.begin(ctx); err != nil {
		return store.Client{}, err
	}
	if id == "" {
		return store.Client{}, store.ErrNotFound
	}
	var (
		c     store.Client
		found bool
	)
	err := s.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketClients)).Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		c, err = decodeClient([]byte(id), v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Client{}, s.fail("client", err)
	}
	if !found {
		return store.Client{}, store.ErrNotFound
	}
	return c, nil
}

// Clients implements store.Clients: every client, ordered by id (bbolt keeps
// keys in byte order).
func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var out []store.Client
	err := s.view(func(tx *bbolt.Tx) error {
		out = []store.Client{}
		return tx.Bucket([]byte(bucketClients)).ForEach(func(k, v []byte) error {
			c, err := decodeClient(k, v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, s.fail("clients", err)
	}
	return out, nil
}

// CreateClient implements store.Clients.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	return s.putClient(ctx, c, nil)
}

// UpdateClient implements store.Clients: the stored version is compared
// with ifUpdatedAt in the write transaction that replaces it.
func (s *Store) UpdateClient(ctx context.Context, c store.Client, ifUpdatedAt time.Time) error {
	return s.putClient(ctx, c, &ifUpdatedAt)
}

// putClient creates c (ifUpdatedAt nil) or replaces the version updated
// at *ifUpdatedAt.
func (s *Store) putClient(ctx context.Context, c store.Client, ifUpdatedAt *time.Time) error {
	update := ifUpdatedAt != nil
	if err := s.begin(ctx); err != nil {
		return err
	}
	if c.ID == "" {
		if update {
			return store.ErrNotFound
		}
		return errors.New("bolt: create client: empty client id")
	}
	k, v := []byte(c.ID), encodeClient(c)
	var result error // ctx error, ErrExists or ErrNotFound: not batch failures
	err := s.write(func(tx *bbolt.Tx) error {
		if result = ctx.Err(); result != nil {
			return nil
		}
		b := tx.Bucket([]byte(bucketClients))
		have := b.Get(k)
		switch {
		case update && have == nil:
			result = store.ErrNotFound
			return nil
		case !update && have != nil:
			result = store.ErrExists
			return nil
		case update:
			old, err := decodeClient(k, have)
			if err != nil {
				return err
			}
			if old.UpdatedAt.UnixMilli() != ifUpdatedAt.UnixMilli() {
				result = store.ErrConflict
				return nil
			}
		}
		return b.Put(k, v)
	})
	if err != nil {
		op := "create client"
		if update {
			op = "update client"
		}
		return s.fail(op, err)
	}
	return result
}

// DeleteClient implements store.Clients: the client and its reuse rows go in
// one transaction.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if id == "" {
		return store.ErrNotFound
	}
	k := []byte(id)
	var result error
	err := s.write(func(tx *bbolt.Tx) error {
		if result = ctx.Err(); result != nil {
			return nil
		}
		b := tx.Bucket([]byte(bucketClients))
		if b.Get(k) == nil {
			result = store.ErrNotFound
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		if !validClientID(id) {
			return nil
		}
		return clearCurrents(tx, id)
	})
	if err != nil {
		return s.fail("delete client", err)
	}
	return result
}
