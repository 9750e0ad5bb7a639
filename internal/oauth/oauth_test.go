package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		name, raw, want string
		ok              bool
	}{
		{"empty", "", "", true},
		{"one", "read", "read", true},
		{"sorted and unique", "write read write", "read write", true},
		// RFC 6749 §3.3: scope-token *( SP scope-token ); issue 13 turned
		// the old tolerance of runs of spaces into invalid_scope.
		{"runs of spaces", "  b   a ", "", false},
		{"doubled space", "read  write", "", false},
		{"leading space", " read", "", false},
		{"trailing space", "read ", "", false},
		{"spaces only", "  ", "", false},
		{"all printable", "a!#[]~", "a!#[]~", true},
		{"quote", `re"ad`, "", false},
		{"backslash", `re\ad`, "", false},
		{"tab", "a\tb", "", false},
		{"non-ascii", "lecture", "lecture", true},
		{"utf8", "lecturé", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseScope(tc.raw)
			if ok != tc.ok || (ok && got.String() != tc.want) {
				t.Fatalf("ParseScope(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNewScope(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, ""},
		{"canonical", []string{"admin", "read", "write"}, "admin read write"},
		{"unsorted", []string{"write", "read"}, "read write"},
		{"adjacent duplicate", []string{"read", "read", "write"}, "read write"},
		{"empty token first", []string{"", "read"}, "read"},
		{"only empty", []string{""}, ""},
		{"prefix order", []string{"read", "re"}, "re read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]string(nil), tc.in...)
			if got := NewScope(tc.in...).String(); got != tc.want {
				t.Fatalf("NewScope(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.in[i] {
					t.Fatalf("NewScope changed its argument: %q", tc.in)
				}
			}
		})
	}
}

func TestScopeSets(t *testing.T) {
	all := NewScope("write", "read", "admin")
	tests := []struct {
		s    Scope
		want bool
	}{
		{NewScope(), true},
		{NewScope("read"), true},
		{NewScope("read", "write", "admin"), true},
		{NewScope("read", "delete"), false},
		{NewScope("rea"), false},
		{NewScope("reads"), false},
	}
	for _, tc := range tests {
		if got := tc.s.SubsetOf(all); got != tc.want {
			t.Errorf("%q ⊆ %q = %v, want %v", tc.s, all, got, tc.want)
		}
	}
	if !all.Contains("admin") || all.Contains("adm") || len(all.Tokens()) != 3 || NewScope().Tokens() != nil {
		t.Fatal("Contains/Tokens")
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"", "read write", "a  b", `"`, "\x00", "z y x x", "b a", "a a", "a "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, ok := ParseScope(raw)
		if !ok {
			return
		}
		again, ok2 := ParseScope(s.String())
		if !ok2 || again != s {
			t.Fatalf("not idempotent: %q -> %q -> %q", raw, s, again)
		}
		if !s.SubsetOf(s) {
			t.Fatal("not a subset of itself")
		}
		for _, tok := range s.Tokens() {
			if tok == "" || !s.Contains(tok) {
				t.Fatalf("token %q", tok)
			}
		}
	})
}

func TestErrorsCopyAndMatch(t *testing.T) {
	e := ErrInvalidScope.WithDescription("too much").WithCause(errors.New("detail"))
	if ErrInvalidScope.Description != "" {
		t.Fatal("WithDescription mutated the sentinel")
	}
	wrapped := fmt.Errorf("handler: %w", e)
	if !errors.Is(wrapped, ErrInvalidScope) || errors.Is(wrapped, ErrInvalidRequest) {
		t.Fatal("errors.Is by code and status")
	}
	if AsError(wrapped) != e {
		t.Fatal("AsError did not find the *Error")
	}
	if got := AsError(errors.New("boom")); !errors.Is(got, ErrServerError) {
		t.Fatalf("AsError(plain) = %v", got)
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, ErrInvalidClient.WithBasicChallenge().WithCause(errors.New("secret mismatch for demo")))
	if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic realm=") ||
		w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	if strings.Contains(w.Body.String(), "secret mismatch") {
		t.Fatal("the cause leaked into the body")
	}
	w = httptest.NewRecorder()
	WriteError(w, errors.New("database password is hunter2"))
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 500 || body["error"] != "server_error" || len(body) != 1 {
		t.Fatalf("plain error: %d %q", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, ErrRateLimited.WithRetryAfter(1500*time.Millisecond))
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("429: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", time.Second + 1: "2", 20 * time.Second: "20",
		-time.Second: "1", math.MaxInt64: "9223372037", math.MaxInt64 - 1: "9223372037"} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestWriteTokenEscapesWhenNeeded(t *testing.T) {
	w := httptest.NewRecorder()
	WriteToken(w, TokenResponse{AccessToken: "abc", TokenType: "Bearer", ExpiresIn: 60, Scope: "a b"})
	var got TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.AccessToken != "abc" || got.ExpiresIn != 60 || got.Scope != "a b" {
		t.Fatalf("fast path: %q %v", w.Body, err)
	}
	w = httptest.NewRecorder()
	WriteToken(w, TokenResponse{AccessToken: `a"b<`, TokenType: "Bearer", ExpiresIn: 1})
	got = TokenResponse{}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.AccessToken != `a"b<` || got.Scope != "" {
		t.Fatalf("escaped path: %q %v", w.Body, err)
	}
}

// TestTokenWriterReusesNothingVisible: responses written one after another
// through one TokenWriter (long, short, escaped, without scope) each carry
// exactly their own fields, headers included, whatever the pooled buffer
// held before.
func TestTokenWriterReusesNothingVisible(t *testing.T) {
	var tw TokenWriter
	cases := []TokenResponse{
		{AccessToken: strings.Repeat("J", 900), TokenType: "Bearer", ExpiresIn: 3600, Scope: "read write"},
		{AccessToken: "short", TokenType: "Bearer", ExpiresIn: 7},
		{AccessToken: `a"b<`, TokenType: "Bearer", ExpiresIn: 1, Scope: "x"},
		{AccessToken: strings.Repeat("K", 5000), TokenType: "Bearer", ExpiresIn: 60},
		{AccessToken: "tail", TokenType: "Bearer", ExpiresIn: 59, Scope: "s"},
	}
	for round := range 3 {
		for i, want := range cases {
			w := httptest.NewRecorder()
			tw.Write(w, want)
			var got TokenResponse
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got != want {
				t.Fatalf("round %d case %d: body %q (%v), want %+v", round, i, w.Body, err, want)
			}
			if h := w.Header(); w.Code != 200 || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("round %d case %d: %d %v", round, i, w.Code, h)
			}
		}
	}
}
