//go:build cassandra

package cassandra_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// writeTimeout is what a coordinator answers when too few replicas
// acknowledged a write in time: the write may have landed.
func writeTimeout() error {
	return &gocql.RequestErrWriteTimeout{Consistency: gocql.Quorum, Received: 1, BlockFor: 2, WriteType: "SIMPLE"}
}

// slotHash reads the slot's token hash directly (nil: no row).
func slotHash(t *testing.T, ks, client, key string) []byte {
	t.Helper()
	var h []byte
	err := rawSession(t).Query(fmt.Sprintf(`SELECT token_hash FROM %s.current_tokens WHERE client_id = ? AND reuse_key = ?`, ks), client, key).Scan(&h)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTokenWriteUnknownOutcomeIsResent: a token write that lands but
// answers a write timeout is sent again, and the mint succeeds, instead of
// a 503 for a token that is stored (and claimed).
func TestTokenWriteUnknownOutcomeIsResent(t *testing.T) {
	cfg := sharedConfig(t)
	s := openStore(t, cfg)
	var calls atomic.Int32
	cassandra.SetWriteFault(s, func(op string, run func() error) error {
		if op != "issue: insert token" || calls.Add(1) > 1 {
			return run()
		}
		if err := run(); err != nil {
			return err
		}
		return writeTimeout()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := "resent-" + fmt.Sprint(time.Now().UnixNano())
	tok, cur := tokenFor(client, "read", "resent", time.Hour, 30*time.Minute)
	if _, claimed, err := s.Issue(ctx, tok, cur); err != nil || !claimed {
		t.Fatalf("Issue with a token write timing out once: claimed %v, %v; want the write resent and the claim kept", claimed, err)
	}
	if n := cassandra.Resends(s); n < 1 {
		t.Fatalf("%d resends, want at least 1", n)
	}
	if _, err := s.Token(ctx, tok.Hash); err != nil {
		t.Fatalf("token after the resent write: %v", err)
	}
}

// TestSlotKeptOnceTokenWriteSent is issue 18's invariant-1 finding: a mint
// whose token row landed but whose answer never came (timeouts to the
// end) answers an error, and must not give the slot back, because another
// replica may already hand that token out; a second mint for the slot
// gets the first token, not a slot of its own.
func TestSlotKeptOnceTokenWriteSent(t *testing.T) {
	cfg := sharedConfig(t)
	a := openStore(t, cfg)
	cassandra.SetWriteFault(a, func(op string, run func() error) error {
		if op != "issue: insert token" {
			return run()
		}
		_ = run()
		return writeTimeout()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := "kept-" + fmt.Sprint(time.Now().UnixNano())
	tok, cur := tokenFor(client, "read", "kept-a", time.Hour, 30*time.Minute)
	if _, _, err := a.Issue(ctx, tok, cur); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Issue whose token write never answers: %v, want ErrUnavailable", err)
	}
	cassandra.WaitBackground(a) // any release has landed
	if h := slotHash(t, cfg.Keyspace, client, "read"); string(h) != string(tok.Hash) {
		t.Fatalf("the slot was given back (holds %x) after its token row was sent", h)
	}
	b := openStore(t, cfg)
	tok2, cur2 := tokenFor(client, "read", "kept-b", time.Hour, 30*time.Minute)
	have, claimed, err := b.Issue(ctx, tok2, cur2)
	if err != nil || claimed || string(have.TokenHash) != string(tok.Hash) {
		t.Fatalf("second mint for the slot: claimed %v, holder %x, %v; want the first token", claimed, have.TokenHash, err)
	}
}

// TestIndexRowBeforeTokenRow: the tokens_by_client row is written before
// the token row, so a token row never exists without the index row that
// RevokeClient finds it by; when the index row fails the token row is not
// written and the slot, whose token was never sent, is given back.
func TestIndexRowBeforeTokenRow(t *testing.T) {
	cfg := sharedConfig(t)
	s := openStore(t, cfg)
	var tokenWrites atomic.Int32
	cassandra.SetWriteFault(s, func(op string, run func() error) error {
		switch op {
		case "issue: insert token index":
			return &gocql.RequestErrUnavailable{Consistency: gocql.Quorum, Required: 2, Alive: 1}
		case "issue: insert token":
			tokenWrites.Add(1)
		}
		return run()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := "index-" + fmt.Sprint(time.Now().UnixNano())
	tok, cur := tokenFor(client, "read", "index", time.Hour, 30*time.Minute)
	if _, _, err := s.Issue(ctx, tok, cur); err == nil {
		t.Fatal("Issue with the index row failing succeeded")
	}
	if n := tokenWrites.Load(); n != 0 {
		t.Fatalf("%d token row writes after the index row failed, want 0", n)
	}
	if _, err := s.Token(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token row after its index row failed: %v, want ErrNotFound", err)
	}
	cassandra.WaitBackground(s)
	if h := slotHash(t, cfg.Keyspace, client, "read"); h != nil {
		t.Fatalf("slot still held (%x) though its token row was never sent", h)
	}
}

// TestLoserWaitsForSlowWinner: the winner of a claim whose token write is
// slow (a loaded cluster with a node down: 300 ms here, injected) is
// waited for by the loser, which hands out the winner's token instead of
// answering 503 after a few milliseconds.
func TestLoserWaitsForSlowWinner(t *testing.T) {
	cfg := sharedConfig(t)
	a, b := openStore(t, cfg), openStore(t, cfg)
	entered, release := make(chan struct{}), make(chan struct{})
	cassandra.SetWriteFault(a, func(op string, run func() error) error {
		if op == "issue: insert token" {
			close(entered)
			<-release
		}
		return run()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := "slow-" + fmt.Sprint(time.Now().UnixNano())
	tokA, curA := tokenFor(client, "read", "slow-a", time.Hour, 30*time.Minute)
	aerr := make(chan error, 1)
	go func() { _, _, err := a.Issue(ctx, tokA, curA); aerr <- err }()
	<-entered // A holds the slot; its token row is not written yet
	type result struct {
		have    store.Current
		claimed bool
		err     error
	}
	bres := make(chan result, 1)
	go func() {
		bctx, bcancel := context.WithTimeout(ctx, 2*time.Second) // the server's store deadline
		defer bcancel()
		tokB, curB := tokenFor(client, "read", "slow-b", time.Hour, 30*time.Minute)
		have, claimed, err := b.Issue(bctx, tokB, curB)
		bres <- result{have, claimed, err}
	}()
	time.Sleep(300 * time.Millisecond) // the winner's slowness, injected
	close(release)
	if err := <-aerr; err != nil {
		t.Fatalf("winner: %v", err)
	}
	r := <-bres
	if r.err != nil || r.claimed || string(r.have.TokenHash) != string(tokA.Hash) {
		t.Fatalf("loser against a slow winner: claimed %v, holder %x, %v; want the winner's token", r.claimed, r.have.TokenHash, r.err)
	}
}

// TestCloseLetsReleaseLand: a slot release started just before Close (a
// mint whose index row failed gives its slot back in the background) still
// lands: Close waits for it before it closes the session, so a replica
// shutting down does not leave the slot naming a token never handed out
// for the rest of its reuse window.
func TestCloseLetsReleaseLand(t *testing.T) {
	cfg := sharedConfig(t)
	s := openStore(t, cfg)
	cassandra.SetWriteFault(s, func(op string, run func() error) error {
		if op == "issue: insert token index" {
			return &gocql.RequestErrUnavailable{Consistency: gocql.Quorum, Required: 2, Alive: 1}
		}
		return run()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := "close-" + fmt.Sprint(time.Now().UnixNano())
	tok, cur := tokenFor(client, "read", "close", time.Hour, 30*time.Minute)
	if _, _, err := s.Issue(ctx, tok, cur); err == nil {
		t.Fatal("Issue with the index row failing succeeded")
	}
	if err := s.Close(); err != nil { // at once: the release is in flight
		t.Fatal(err)
	}
	if h := slotHash(t, cfg.Keyspace, client, "read"); h != nil {
		t.Fatalf("slot still held (%x) after Close: the release started before it did not land", h)
	}
}
