package oauth

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		ok   bool
	}{
		{"none", nil, []string{}, true},
		{"one", []string{"https://api.example/"}, []string{"https://api.example/"}, true},
		{"sorted and deduplicated", []string{"urn:b", "https://a.example", "urn:b"}, []string{"https://a.example", "urn:b"}, true},
		{"query allowed", []string{"https://a.example/x?y=1"}, []string{"https://a.example/x?y=1"}, true},
		{"relative", []string{"/api"}, nil, false},
		{"fragment", []string{"https://a.example/#x"}, nil, false},
		{"empty fragment", []string{"https://a.example/#"}, nil, false},
		{"empty", []string{""}, nil, false},
		{"space", []string{"https://a.example/a b"}, nil, false},
		{"control", []string{"https://a.example/\x00"}, nil, false},
		{"too many", slices.Repeat([]string{"urn:x"}, MaxResources+1), nil, false},
		{"too long", []string{"https://a.example/" + strings.Repeat("a", 2048)}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseResources(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("err = %v, want invalid_target", err)
			}
			if tc.ok && !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzParseResources: any resource values give a sorted, unique list of
// absolute URIs without fragment, or invalid_target; never a panic.
func FuzzParseResources(f *testing.F) {
	f.Add("https://api.example/", "urn:x")
	f.Add("/rel", "")
	f.Add("https://a.example/#f", "http://[::1]:80/")
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := ParseResources([]string{a, b})
		if err != nil {
			if !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("err %v is not invalid_target", err)
			}
			return
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("not sorted and unique: %q", got)
		}
		for _, r := range got {
			u, err := url.Parse(r)
			if err != nil || !u.IsAbs() || strings.Contains(r, "#") {
				t.Fatalf("accepted %q", r)
			}
		}
	})
}
