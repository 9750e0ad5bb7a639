//go:build cassandra

package cassandra_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// An unknown outcome, as a coordinator reports it when a proposal was
// accepted by fewer replicas than a quorum, or a node died mid-round.
func casUnknown() error {
	return &gocql.RequestErrCASWriteUnknown{Consistency: gocql.Serial, Received: 1, BlockFor: 2}
}

// faultOnce makes the first lightweight transaction named op answer
// casUnknown: after running it (apply) or without (skip).
func faultOnce(s *cassandra.Store, op string, apply bool) *atomic.Int32 {
	var calls atomic.Int32
	cassandra.SetCASFault(s, func(name string, run func() (bool, error)) (bool, error) {
		if name != op || calls.Add(1) > 1 {
			return run()
		}
		if apply {
			if _, err := run(); err != nil {
				return false, err
			}
		}
		return false, casUnknown()
	})
	return &calls
}

// TestUnknownClaimOutcomes: a claim whose outcome is unknown is resolved by
// the serial read-back on the real Cassandra, in each of its three cases.
func TestUnknownClaimOutcomes(t *testing.T) {
	cfg := sharedConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("applied", func(t *testing.T) {
		truncate(t, rawSession(t), cfg.Keyspace)
		s := openStore(t, cfg)
		calls := faultOnce(s, "issue: claim", true)
		tok, cur := tokenFor("unk", "read", "applied", time.Hour, 30*time.Minute)
		_, claimed, err := s.Issue(ctx, tok, cur)
		if err != nil || !claimed {
			t.Fatalf("Issue = claimed %v, %v; want the applied claim recognised", claimed, err)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d claim statements, want 1 (the read-back settles it)", n)
		}
		if _, err := s.Token(ctx, tok.Hash); err != nil {
			t.Fatalf("Token: %v; the claimed token must be stored", err)
		}
		if got, err := s.Current(ctx, "unk", "read"); err != nil || !bytes.Equal(got.TokenHash, tok.Hash) {
			t.Fatalf("Current = %x, %v; want %x", got.TokenHash, err, tok.Hash)
		}
	})

	t.Run("not applied: sent again", func(t *testing.T) {
		truncate(t, rawSession(t), cfg.Keyspace)
		s := openStore(t, cfg)
		calls := faultOnce(s, "issue: claim", false)
		tok, cur := tokenFor("unk", "read", "skipped", time.Hour, 30*time.Minute)
		_, claimed, err := s.Issue(ctx, tok, cur)
		if err != nil || !claimed {
			t.Fatalf("Issue = claimed %v, %v; want the claim sent again and applied", claimed, err)
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("%d claim statements, want 2", n)
		}
	})

	t.Run("another replica won", func(t *testing.T) {
		truncate(t, rawSession(t), cfg.Keyspace)
		winner, s := openStore(t, cfg), openStore(t, cfg)
		wtok, wcur := tokenFor("unk", "read", "winner", time.Hour, 30*time.Minute)
		if _, claimed, err := winner.Issue(ctx, wtok, wcur); err != nil || !claimed {
			t.Fatalf("winner Issue = %v, %v", claimed, err)
		}
		faultOnce(s, "issue: claim", true) // runs (not applied), answers unknown
		tok, cur := tokenFor("unk", "read", "loser", time.Hour, 30*time.Minute)
		got, claimed, err := s.Issue(ctx, tok, cur)
		if err != nil || claimed || !bytes.Equal(got.TokenHash, wtok.Hash) {
			t.Fatalf("Issue = %x claimed %v, %v; want the winner %x", got.TokenHash, claimed, err, wtok.Hash)
		}
		if _, err := s.Token(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("loser's token: %v, want ErrNotFound (nothing persisted)", err)
		}
	})
}

// TestUnknownClientWrites: the registry's lightweight transactions resolve
// an unknown outcome the same way: an applied create is no conflict, an
// applied delete no "not found".
func TestUnknownClientWrites(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().UTC()
	c := store.Client{ID: "unk-client", SecretHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", Scopes: []string{"read"},
		CreatedAt: now, UpdatedAt: now}

	faultOnce(s, "create client", true)
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatalf("CreateClient after an unknown but applied insert: %v, want nil", err)
	}
	if err := s.CreateClient(ctx, c); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateClient again: %v, want ErrExists", err)
	}
	c.SecretHash += "2"
	prev := c.UpdatedAt
	c.UpdatedAt = now.Add(time.Second)
	faultOnce(s, "update client", true)
	if err := s.UpdateClient(ctx, c, prev); err != nil {
		t.Fatalf("UpdateClient after an unknown but applied update: %v", err)
	}
	if got, err := s.Client(ctx, c.ID); err != nil || got.SecretHash != c.SecretHash {
		t.Fatalf("Client = %+v, %v; want the update", got, err)
	}
	faultOnce(s, "delete client", true)
	if err := s.DeleteClient(ctx, c.ID); err != nil {
		t.Fatalf("DeleteClient after an unknown but applied delete: %v, want nil", err)
	}
	if _, err := s.Client(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Client after delete: %v, want ErrNotFound", err)
	}
}
