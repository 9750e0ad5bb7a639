package oauth

import (
	"strings"
	"testing"
)

// FuzzJSONSafe: the word-at-a-time jsonSafe agrees with the byte-wise rule.
func FuzzJSONSafe(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
	f.Add("abc\"defghijkl")
	f.Add("abcdefg\x7fhij")
	f.Add("\x80abcdefgh")
	f.Add("abcdefgh<")
	f.Fuzz(func(t *testing.T, s string) {
		want := true
		for i := 0; i < len(s); i++ {
			if !jsonSafeByte(s[i]) {
				want = false
			}
		}
		if got := jsonSafe(s); got != want {
			t.Fatalf("jsonSafe(%q) = %v, want %v", s, got, want)
		}
	})
}

func BenchmarkJSONSafeJWT(b *testing.B) {
	s := strings.Repeat("eyJhbGciOiJFUzI1NiIsImtpZCI6", 20)[:520]
	for b.Loop() {
		if !jsonSafe(s) {
			b.Fatal("unsafe")
		}
	}
}

func BenchmarkJSONSafeBytewise(b *testing.B) {
	s := strings.Repeat("eyJhbGciOiJFUzI1NiIsImtpZCI6", 20)[:520]
	for b.Loop() {
		for i := 0; i < len(s); i++ {
			if !jsonSafeByte(s[i]) {
				b.Fatal("unsafe")
			}
		}
	}
}
