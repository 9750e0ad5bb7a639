package clients_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/store"
)

// TestSpecClient: the one validator of a registration names the field of
// every problem, and normalises what it accepts.
func TestSpecClient(t *testing.T) {
	ok := clients.Spec{ID: "svc", Scopes: []string{"write", "read", "read"}}
	for _, tc := range []struct {
		name  string
		edit  func(*clients.Spec)
		field string // "" = accepted
	}{
		{"minimal", func(*clients.Spec) {}, ""},
		{"printable ASCII id with space inside", func(s *clients.Spec) { s.ID = "a b" }, ""},
		{"non-ASCII id", func(s *clients.Spec) { s.ID = "café" }, "id"},
		{"control char id", func(s *clients.Spec) { s.ID = "a\nb" }, "id"},
		{"empty id", func(s *clients.Spec) { s.ID = "" }, "id"},
		{"padded id", func(s *clients.Spec) { s.ID = " a" }, "id"},
		{"long id", func(s *clients.Spec) { s.ID = strings.Repeat("a", clients.MaxClientIDLen+1) }, "id"},
		{"no scopes", func(s *clients.Spec) { s.Scopes = nil }, "scopes"},
		{"bad scope", func(s *clients.Spec) { s.Scopes = []string{"read", `a"b`} }, "scopes[1]"},
		{"unsupported grant", func(s *clients.Spec) { s.GrantTypes = []string{"password"} }, "grant_types[0]"},
		{"ttl too short", func(s *clients.Spec) { s.TokenTTL = time.Millisecond }, "token_ttl"},
		{"ttl too long", func(s *clients.Spec) { s.TokenTTL = clients.MaxTokenTTL + time.Second }, "token_ttl"},
		{"rate NaN", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: math.NaN(), Burst: 1} }, "limit.rate"},
		{"rate +Inf", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: math.Inf(1), Burst: 1} }, "limit.rate"},
		{"rate negative", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: -1, Burst: 1} }, "limit.rate"},
		{"rate without burst", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: 1} }, "limit.burst"},
		{"unlimited", func(s *clients.Spec) { s.Limit = &store.Limit{} }, ""},
		{"bad secret hash", func(s *clients.Spec) { s.SecretHash = "$argon2id$nope" }, "secret_hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			c, err := s.Client()
			var se *clients.SpecError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "":
				if strings.Join(c.Scopes, " ") != "read write" {
					t.Fatalf("scopes not normalised: %q", c.Scopes)
				}
			case !errors.As(err, &se) || se.Field != tc.field:
				t.Fatalf("error %v, want a SpecError for %q", err, tc.field)
			}
		})
	}
}
