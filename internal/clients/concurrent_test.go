package clients_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// Concurrent changes of one client by two replicas (two Managers, each
// with its own registry, on one store). The race is made, not hoped for:
// pausing holds replica A between its read of the client and its write
// while replica B changes the client. runRaces runs the scenarios on any
// store; the memory store here, the real Cassandra in
// cassandra_race_test.go.

// pausing is the real store with a fault hook: once armed, the next Client
// read returns to its caller only after the test let it go (read is
// closed when the read is done; the read returns when resume is closed).
type pausing struct {
	clients.Store
	armed  chan struct{} // closed by the first paused read, nil when unarmed
	read   chan struct{}
	resume chan struct{}
}

func newPausing(s clients.Store) *pausing {
	return &pausing{Store: s, armed: make(chan struct{}, 1), read: make(chan struct{}), resume: make(chan struct{})}
}

// arm makes the next Client read pause.
func (p *pausing) arm() { p.armed <- struct{}{} }

func (p *pausing) Client(ctx context.Context, id string) (store.Client, error) {
	c, err := p.Store.Client(ctx, id)
	select {
	case <-p.armed:
		close(p.read)
		<-p.resume
	default:
	}
	return c, err
}

// keySet returns a fresh JWK Set with one P-256 public key.
func keySet(t *testing.T, kid string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return `{"keys":[` + string(pub) + `]}`
}

func cheapManager(t *testing.T, s clients.Store) *clients.Manager {
	t.Helper()
	reg := mustRegistry(t, nil, s, clients.RegistryOptions{})
	m, err := clients.NewManager(clients.ManagerOptions{Registry: reg, Store: s,
		Argon2: clientauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runRaces runs the two-replica scenarios; newStore returns a fresh,
// empty store (one per scenario) and a second handle on it (another
// replica's session, or the same store).
func runRaces(t *testing.T, newStore func(t *testing.T) (a, b clients.Store)) {
	t.Run("PatchDoesNotRestoreRevokedKey", func(t *testing.T) {
		ctx := context.Background()
		sa, sb := newStore(t)
		pa := newPausing(sa)
		mA, mB := cheapManager(t, pa), cheapManager(t, sb)
		k1, k2 := keySet(t, "k1"), keySet(t, "k2")
		method := clients.MethodPrivateKeyJWT
		created, _, err := mB.Create(ctx, clients.Spec{ID: "svc", Scopes: []string{"read"}, AuthMethod: method, JWKS: k1})
		if err != nil {
			t.Fatal(err)
		}
		pa.arm()
		done := make(chan error, 1)
		go func() { // replica A: an unrelated change
			sc := []string{"read", "write"}
			_, _, err := mA.Update(ctx, "svc", clients.Patch{Scopes: &sc})
			done <- err
		}()
		<-pa.read
		// Replica B, meanwhile: k1 is compromised, re-key.
		rekeyed, _, err := mB.Update(ctx, "svc", clients.Patch{JWKS: &k2})
		if err != nil {
			t.Fatal(err)
		}
		close(pa.resume)
		if err := <-done; err != nil {
			t.Fatalf("A's update: %v", err)
		}
		c, err := sb.Client(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		if c.JWKS != rekeyed.JWKS || c.JWKS == created.JWKS {
			t.Errorf("stored jwks is not B's new key set (lost update: the revoked key is back): %s", c.JWKS)
		}
		if !slices.Equal(c.Scopes, []string{"read", "write"}) {
			t.Errorf("stored scopes = %v, want A's change re-applied over B's", c.Scopes)
		}
		if !c.UpdatedAt.After(rekeyed.UpdatedAt) {
			t.Errorf("updated_at %v not after B's write %v", c.UpdatedAt, rekeyed.UpdatedAt)
		}
	})
	t.Run("RotateRacingSwitchToPrivateKeyJWT", func(t *testing.T) {
		ctx := context.Background()
		sa, sb := newStore(t)
		pa := newPausing(sa)
		mA, mB := cheapManager(t, pa), cheapManager(t, sb)
		if _, _, err := mB.Create(ctx, clients.Spec{ID: "svc", Scopes: []string{"read"}}); err != nil {
			t.Fatal(err)
		}
		pa.arm()
		type result struct {
			secret string
			err    error
		}
		done := make(chan result, 1)
		go func() {
			_, s, err := mA.RotateSecret(ctx, "svc")
			done <- result{s, err}
		}()
		<-pa.read
		method, k := clients.MethodPrivateKeyJWT, keySet(t, "k1")
		if info, _, err := mB.Update(ctx, "svc", clients.Patch{AuthMethod: &method, JWKS: &k}); err != nil || info.AuthMethod != method {
			t.Fatalf("B's switch: %+v, %v", info, err)
		}
		close(pa.resume)
		r := <-done
		if !errors.Is(r.err, clients.ErrNoSecret) || r.secret != "" {
			t.Errorf("A's rotation = %q, %v; want ErrNoSecret (the client no longer has a secret)", r.secret, r.err)
		}
		c, err := sb.Client(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		if c.AuthMethod != method || c.SecretHash != "" || c.JWKS == "" {
			t.Errorf("stored after the race: auth_method=%q secret_hash set=%v jwks set=%v; want private_key_jwt without a secret",
				c.AuthMethod, c.SecretHash != "", c.JWKS != "")
		}
	})
}

// TestReplicaRacesMemory: the scenarios on the memory store (both
// replicas share it).
func TestReplicaRacesMemory(t *testing.T) {
	runRaces(t, func(t *testing.T) (clients.Store, clients.Store) {
		m := memory.New(memory.Options{})
		t.Cleanup(func() { m.Close() })
		return m, m
	})
}

// interloper is the real memory store with another writer that changes
// the client between every read of it and the write that follows.
type interloper struct {
	*memory.Store
	reads int
}

func (s *interloper) Client(ctx context.Context, id string) (store.Client, error) {
	c, err := s.Store.Client(ctx, id)
	if err != nil {
		return c, err
	}
	s.reads++
	next := c
	next.UpdatedAt = c.UpdatedAt.Add(time.Millisecond)
	next.Introspect = !c.Introspect
	if err := s.Store.UpdateClient(ctx, next, c.UpdatedAt); err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// TestUpdateGivesUpAfterConflicts: a client changed by someone else
// between every read and write is read and re-patched WriteAttempts times,
// then Update answers store.ErrConflict and has written nothing.
func TestUpdateGivesUpAfterConflicts(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	m := cheapManager(t, mem)
	if _, _, err := m.Create(ctx, clients.Spec{ID: "svc", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	st := &interloper{Store: mem}
	m = cheapManager(t, st)
	sc := []string{"read", "write"}
	_, _, err := m.Update(ctx, "svc", clients.Patch{Scopes: &sc})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("Update under constant interference: %v, want store.ErrConflict", err)
	}
	if st.reads != clients.WriteAttempts {
		t.Fatalf("reads = %d, want %d", st.reads, clients.WriteAttempts)
	}
	if c, _ := mem.Client(ctx, "svc"); !slices.Equal(c.Scopes, []string{"read"}) {
		t.Fatalf("scopes = %v: a conflicting write was applied", c.Scopes)
	}
	if _, _, err := m.RotateSecret(ctx, "svc"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RotateSecret under constant interference: %v, want store.ErrConflict", err)
	}
}

// TestUpdateToSecretWhoseAnswerIsLost: a switch from private_key_jwt to a
// secret that took effect although the store answered unavailable returns
// the generated secret (read back), as a rotation does.
func TestUpdateToSecretWhoseAnswerIsLost(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	m := cheapManager(t, lostAnswer{mem})
	method := clients.MethodPrivateKeyJWT
	if _, _, err := m.Create(ctx, clients.Spec{ID: "svc", Scopes: []string{"read"}, AuthMethod: method, JWKS: keySet(t, "k1")}); err != nil {
		t.Fatal(err)
	}
	back := clients.MethodSecretBasic
	info, secret, err := m.Update(ctx, "svc", clients.Patch{AuthMethod: &back})
	if err != nil || secret == "" || info.AuthMethod != clients.MethodSecretBasic {
		t.Fatalf("switch to a secret that landed: %+v, %q, %v; want its secret", info, secret, err)
	}
	c, err := mem.Client(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := clientauth.VerifySecret(c.SecretHash, secret); err != nil || !ok {
		t.Fatalf("the stored hash does not match the secret handed out: %v %v", ok, err)
	}
	sc := []string{"read", "write"}
	if info, _, err := m.Update(ctx, "svc", clients.Patch{Scopes: &sc}); err != nil || !slices.Equal(info.Scopes, sc) {
		t.Fatalf("scope update that landed: %+v, %v", info, err)
	}
	mem.Close()
	if _, _, err := m.Update(ctx, "svc", clients.Patch{Scopes: &sc}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("update on a closed store: %v", err)
	}
}

// TestUpdatePartialLimit: a patch of the rate alone or the burst alone
// keeps the other half of the client's own limit; a client without one
// (limits.per_client) is refused with a SpecError naming what is missing,
// and is left as it was, not made unlimited.
func TestUpdatePartialLimit(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	m := cheapManager(t, mem)
	if _, _, err := m.Create(ctx, clients.Spec{ID: "own", Scopes: []string{"read"}, Limit: &store.Limit{Rate: 2, Burst: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create(ctx, clients.Spec{ID: "default", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	burst, rate := 50, 3.5
	if info, _, err := m.Update(ctx, "own", clients.Patch{LimitBurst: &burst}); err != nil || info.Limit == nil || *info.Limit != (store.Limit{Rate: 2, Burst: 50}) {
		t.Fatalf("burst alone: %+v, %v; want rate 2 kept, burst 50", info.Limit, err)
	}
	if info, _, err := m.Update(ctx, "own", clients.Patch{LimitRate: &rate}); err != nil || info.Limit == nil || *info.Limit != (store.Limit{Rate: 3.5, Burst: 50}) {
		t.Fatalf("rate alone: %+v, %v; want rate 3.5, burst 50 kept", info.Limit, err)
	}
	if c, _ := mem.Client(ctx, "own"); c.Limit == nil || *c.Limit != (store.Limit{Rate: 3.5, Burst: 50}) {
		t.Fatalf("stored limit = %+v", c.Limit)
	}
	var se *clients.SpecError
	if _, _, err := m.Update(ctx, "default", clients.Patch{LimitBurst: &burst}); !errors.As(err, &se) || se.Field != "limit.rate" {
		t.Fatalf("burst alone without an own limit: %v, want a SpecError for limit.rate", err)
	}
	if _, _, err := m.Update(ctx, "default", clients.Patch{LimitRate: &rate}); !errors.As(err, &se) || se.Field != "limit.burst" {
		t.Fatalf("rate alone without an own limit: %v, want a SpecError for limit.burst", err)
	}
	if c, _ := mem.Client(ctx, "default"); c.Limit != nil {
		t.Fatalf("limit after refused partial patches = %+v, want none (limits.per_client)", c.Limit)
	}
	zero := 0
	if _, _, err := m.Update(ctx, "own", clients.Patch{LimitBurst: &zero}); !errors.As(err, &se) || se.Field != "limit.burst" {
		t.Fatalf("burst 0 with rate 3.5: %v, want the limit's own validation", err)
	}
}
