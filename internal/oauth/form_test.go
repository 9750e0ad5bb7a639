package oauth

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// ParseFormShape agrees with url.ParseQuery: the same values, and an error
// exactly when it fails.
func TestParseFormMatchesParseQuery(t *testing.T) {
	for _, body := range []string{
		"", "&", "&&", "=", "a", "a=", "=b", "a=b", "a=b&a=c", "a=b&c=d&a=e",
		"grant_type=client_credentials&scope=read+write",
		"client_secret=s%3Ar%26t&client_id=c%20d", "a=%zz", "a=%", "a=%4", "%zz=b",
		"a=b;c=d", "a;b", "resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb&resource=x",
		"a=b&&c=d&", "a==b", "a=b=c", "+=+", "%00=%00", "a=\xff",
	} {
		checkParseForm(t, body)
	}
}

func checkParseForm(t *testing.T, body string) {
	t.Helper()
	want, wantErr := url.ParseQuery(body)
	got, shape, err := ParseFormShape(body)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ParseFormShape(%q) error = %v, url.ParseQuery's = %v", body, err, wantErr)
	}
	var wantShape FormShape
	for _, v := range want {
		wantShape.Repeats = wantShape.Repeats || len(v) > 1
		wantShape.Empties = wantShape.Empties || slices.Contains(v, "")
	}
	if shape != wantShape {
		t.Fatalf("ParseFormShape(%q) shape = %+v, want %+v", body, shape, wantShape)
	}
	checkRequestForm(t, body, want, wantShape, wantErr)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseFormShape(%q) = %v, url.ParseQuery = %v", body, got, want)
	}
}

// checkRequestForm holds ParseRequestForm and the Form's accessors to what
// url.ParseQuery gives for body, and Repeated and DropEmpty to the walk of
// url.Values that RFC 6749 §3.2 asks for.
func checkRequestForm(t *testing.T, body string, want url.Values, wantShape FormShape, wantErr error) {
	t.Helper()
	f, shape, err := ParseRequestForm(body)
	if (err != nil) != (wantErr != nil) || shape != wantShape {
		t.Fatalf("ParseRequestForm(%q): error %v shape %+v; url.ParseQuery's error %v, shape %+v", body, err, shape, wantErr, wantShape)
	}
	if got := urlValues(f); !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseRequestForm(%q) = %v, url.ParseQuery = %v", body, got, want)
	}
	repeats := false
	for k, v := range want {
		if f.Get(k) != v[0] || !f.Has(k) || f.Count(k) != len(v) || !reflect.DeepEqual(f.Values(k), v) {
			t.Fatalf("ParseRequestForm(%q), key %q: Get %q Has %v Count %d Values %q; want %q", body, k, f.Get(k), f.Has(k), f.Count(k), f.Values(k), v)
		}
		repeats = repeats || (len(v) > 1 && k != "resource")
	}
	if r, ok := f.Repeated("resource"); ok != repeats || (ok && (len(want[r]) < 2 || r == "resource")) {
		t.Fatalf("ParseRequestForm(%q).Repeated = %q %v, want a repeated key: %v", body, r, ok, repeats)
	}
	dropped := url.Values{}
	for k, v := range want {
		if !(len(v) == 1 && v[0] == "") {
			dropped[k] = v
		}
	}
	f.DropEmpty()
	if got := urlValues(f); !reflect.DeepEqual(got, dropped) {
		t.Fatalf("ParseRequestForm(%q).DropEmpty() = %v, want %v", body, got, dropped)
	}
}

// A second value of a parameter does not overwrite the first one's
// neighbour in the shared backing array.
func TestParseFormRepeatDoesNotClobber(t *testing.T) {
	f, _, err := ParseFormShape("a=1&b=2&a=3&c=4")
	if err != nil {
		t.Fatal(err)
	}
	if got := f["a"]; len(got) != 2 || got[0] != "1" || got[1] != "3" {
		t.Fatalf("a = %q", got)
	}
	if f.Get("b") != "2" || f.Get("c") != "4" {
		t.Fatalf("b, c = %q, %q", f.Get("b"), f.Get("c"))
	}
}

func TestParseFormParameterLimit(t *testing.T) {
	if _, _, err := ParseFormShape(strings.Repeat("a=b&", maxFormParams)); err == nil {
		t.Fatal("10001 parameters accepted")
	}
	if _, _, err := ParseFormShape(strings.Repeat("a=b&", maxFormParams-1)); err != nil {
		t.Fatalf("10000 parameters: %v", err)
	}
}

func FuzzParseForm(f *testing.F) {
	for _, s := range []string{"grant_type=client_credentials&scope=read", "a=%zz&b=c", "a=b;c", "x=1&x=2&y=3", "+%2B=%20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 64<<10 {
			return
		}
		checkParseForm(t, body)
	})
}

func TestFormReader(t *testing.T) {
	fr := NewFormReader(10)
	for _, tc := range []struct {
		body    string
		r       func(io.Reader) io.Reader
		want    string
		tooBig  bool
		wantErr bool
	}{
		{body: "", want: ""},
		{body: "a=b", want: "a=b"},
		{body: "0123456789", want: "0123456789"},
		{body: "0123456789x", tooBig: true},
		{body: strings.Repeat("x", 5000), tooBig: true},
		{body: "0123456789", r: iotest.OneByteReader, want: "0123456789"},
		{body: "0123456789x", r: iotest.OneByteReader, tooBig: true},
		{body: "a=b", r: iotest.DataErrReader, want: "a=b"},
		{body: "a=b", r: iotest.TimeoutReader, wantErr: true},
	} {
		var r io.Reader = strings.NewReader(tc.body)
		if tc.r != nil {
			r = tc.r(r)
		}
		got, err := fr.Read(r)
		switch {
		case tc.tooBig:
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("%d bytes: err = %v, want ErrBodyTooLarge", len(tc.body), err)
			}
		case tc.wantErr:
			if err == nil || errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("%q: err = %v, want the reader's", tc.body, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%q: got %q, %v", tc.body, got, err)
		}
	}
}

// A buffer handed back to the pool holds nothing of the body it read.
func TestFormReaderClearsBuffers(t *testing.T) {
	fr := NewFormReader(8192)
	// sync.Pool may drop an item at a GC (it takes two in a row): try again.
	for attempt := 0; attempt < 5; attempt++ {
		if _, err := fr.Read(strings.NewReader("client_secret=hunter2")); err != nil {
			t.Fatal(err)
		}
		bp, _ := fr.bufs.Get().(*[]byte)
		if bp == nil {
			continue
		}
		for _, c := range (*bp)[:cap(*bp)] {
			if c != 0 {
				t.Fatal("a pooled buffer still holds body bytes")
			}
		}
		return
	}
	t.Fatal("no buffer came back to the pool")
}

// TestRequestFormLarge: past smallForm parameters a Form keeps counts, so
// that Has, Count, Repeated and DropEmpty stay linear in a hostile body
// (BenchmarkParseRequestFormHostile shows the cost); the answers are the
// same as url.ParseQuery's, with and without repeats and empty values.
func TestRequestFormLarge(t *testing.T) {
	var distinct, mixed strings.Builder
	for i := range 3000 { // more than the default body cap admits
		if i > 0 {
			distinct.WriteByte('&')
			mixed.WriteByte('&')
		}
		fmt.Fprintf(&distinct, "k%d", i)        // distinct keys, empty values
		fmt.Fprintf(&mixed, "k%d=v", i%(i/2+1)) // repeats, and keys sent once
	}
	for _, body := range []string{distinct.String(), mixed.String(), "a=1&" + strings.Repeat("resource=x&", smallForm) + "b="} {
		f, _, err := ParseRequestForm(body)
		if err != nil {
			t.Fatal(err)
		}
		if f.counts == nil {
			t.Fatalf("a form of %d parameters keeps no counts", len(f.params))
		}
		// A copy shares the counts: DropEmpty on the copy leaves the
		// original as it was.
		before := urlValues(f)
		g := f
		g.DropEmpty()
		for k := range before {
			if !f.Has(k) || f.Count(k) != len(before[k]) {
				t.Fatalf("DropEmpty on a copy changed the original's %q", k)
			}
		}
		checkParseForm(t, body)
	}
}

// BenchmarkParseRequestFormHostile: the worst body the default
// server.max_body_bytes (8192) admits for the §3.2 checks, about 2,700
// distinct keys without values, parsed and checked as readForm does.
//
//	go test -run '^$' -bench ParseRequestFormHostile -benchmem ./internal/oauth/
func BenchmarkParseRequestFormHostile(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 8192-6; i++ {
		if i > 0 {
			sb.WriteByte('&')
		}
		fmt.Fprintf(&sb, "%x", i)
	}
	body := sb.String()
	b.ReportAllocs()
	for b.Loop() {
		f, shape, err := ParseRequestForm(body)
		if err != nil || !shape.Empties {
			b.Fatal(err, shape)
		}
		if _, ok := f.Repeated("resource"); ok {
			b.Fatal("repeated")
		}
		f.DropEmpty()
	}
}

// urlValues is f's parameters as url.Values, to compare with url.ParseQuery.
func urlValues(f Form) url.Values {
	v := make(url.Values, len(f.params))
	for _, p := range f.params {
		v[p.Key] = append(v[p.Key], p.Value)
	}
	return v
}
