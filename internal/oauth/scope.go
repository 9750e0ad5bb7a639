package oauth

import (
	"slices"
	"strings"
)

// Scope is a normalised scope set: sorted, without duplicates. The zero value
// is the empty set. Scope values compare with == and serialise with String.
//
// RFC 6749 §3.3: "The value of the scope parameter is expressed as a list of
// space-delimited, case-sensitive strings ... scope-token = 1*( %x21 / %x23-5B
// / %x5D-7E )".
type Scope struct {
	s string // canonical: tokens sorted, unique, joined by one space
}

// ParseScope parses a scope parameter (RFC 6749 §3.3):
//
//	scope       = scope-token *( SP scope-token )
//	scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
//
// It returns ok=false for anything else: a character outside scope-token,
// and doubled, leading or trailing spaces ("read  write", " read", "  ").
// The empty string is no scope at all. The result is normalised.
func ParseScope(raw string) (Scope, bool) {
	if raw == "" {
		return Scope{}, true
	}
	parts := strings.Split(raw, " ")
	for _, p := range parts {
		if p == "" || !ValidScopeToken(p) {
			return Scope{}, false
		}
	}
	return NewScope(parts...), true
}

// NewScope builds a normalised set from tokens. Tokens are not validated;
// use ParseScope for input from the wire.
func NewScope(tokens ...string) Scope {
	if len(tokens) == 0 {
		return Scope{}
	}
	if canonical(tokens) { // registered scopes usually are: skip the copy and the sort
		return Scope{s: strings.Join(tokens, " ")}
	}
	t := slices.Clone(tokens)
	slices.Sort(t)
	t = slices.Compact(t)
	if len(t) > 0 && t[0] == "" {
		t = t[1:]
	}
	return Scope{s: strings.Join(t, " ")}
}

// canonical reports whether tokens are already sorted, unique and non-empty.
func canonical(tokens []string) bool {
	for i, t := range tokens {
		if t == "" || (i > 0 && tokens[i-1] >= t) {
			return false
		}
	}
	return true
}

// ValidScopeToken reports whether t is one RFC 6749 §3.3 scope token:
// "scope-token = 1*( %x21 / %x23-5B / %x5D-7E )".
func ValidScopeToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// String is the canonical space-delimited form ("" for the empty set).
func (s Scope) String() string { return s.s }

// Empty reports whether the set has no tokens.
func (s Scope) Empty() bool { return s.s == "" }

// Tokens returns the scope tokens in order.
func (s Scope) Tokens() []string {
	if s.s == "" {
		return nil
	}
	return strings.Split(s.s, " ")
}

// Contains reports whether tok is in the set.
func (s Scope) Contains(tok string) bool {
	rest := s.s
	for rest != "" {
		var t string
		t, rest, _ = strings.Cut(rest, " ")
		if t == tok {
			return true
		}
	}
	return false
}

// SubsetOf reports whether every token of s is in other.
func (s Scope) SubsetOf(other Scope) bool {
	if s.s == other.s || s.s == "" {
		return true
	}
	rest := s.s
	for rest != "" {
		var t string
		t, rest, _ = strings.Cut(rest, " ")
		if !other.Contains(t) {
			return false
		}
	}
	return true
}
