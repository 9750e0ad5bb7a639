package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	want := []Credential{{"a", "s1"}, {"b", "s2"}}
	tests := []struct {
		name string
		in   string
		want []Credential
		bad  bool
	}{
		{"json array", `[{"id":"a","secret":"s1"},{"id":"b","secret":"s2"}]`, want, false},
		{"json object", `{"clients":[{"id":"a","secret":"s1"},{"id":"b","secret":"s2"}]}`, want, false},
		{"csv with header", "id,secret\na,s1\nb,s2\n", want, false},
		{"csv with comments", "# load-test consumers\na, s1\nb,s2", want, false},
		{"empty", "  \n", nil, true},
		{"csv short row", "a\n", nil, true},
		{"missing secret", `[{"id":"a"}]`, nil, true},
		{"only a header", "id,secret\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCredentials([]byte(tt.in))
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %v", err, tt.bad)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteCredentialsRoundTrip(t *testing.T) {
	creds := generateCredentials(3, "x-")
	for _, name := range []string{"c.json", "c.csv"} {
		p := filepath.Join(t.TempDir(), name)
		if err := writeCredentials(p, creds); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
		got, err := loadCredentials(p)
		if err != nil || !slices.Equal(got, creds) {
			t.Fatalf("%s: got %v, %v; want %v", name, got, err, creds)
		}
	}
}

func TestBasicAuthFormEncodes(t *testing.T) {
	h := Credential{ID: "a b:c", Secret: "p+ss%"}.basicAuth()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
	if err != nil || string(raw) != "a+b%3Ac:p%2Bss%25" {
		t.Fatalf("basic = %q (%q, %v)", h, raw, err)
	}
}

// TestAdminClient runs the admin client against a stand-in for the admin
// API's documented contract: POST /admin/clients {"id","scopes"} with the
// bearer token -> 201 {"client":{...},"secret":"..."}.
func TestAdminClient(t *testing.T) {
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/admin/clients" || r.Header.Get("Authorization") != "Bearer T" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var in struct {
			ID     string   `json:"id"`
			Scopes []string `json:"scopes"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !slices.Equal(in.Scopes, []string{"read"}) {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		ids = append(ids, in.ID)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"client": map[string]any{"id": in.ID, "scopes": in.Scopes}, "secret": "sec-" + in.ID})
	}))
	defer srv.Close()
	a := adminClient{base: srv.URL, token: "T", client: srv.Client()}
	creds, err := a.create(context.Background(), 2, "p-", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Credential{{"p-1", "sec-p-1"}, {"p-2", "sec-p-2"}}; !slices.Equal(creds, want) {
		t.Fatalf("creds = %v, want %v", creds, want)
	}
	a.token = "wrong"
	if _, err := a.create(context.Background(), 1, "q-", []string{"read"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad token: err = %v", err)
	}
}

func TestCommandLineRedactsAdminToken(t *testing.T) {
	got := commandLine([]string{"go", "run", "./loadtest", "--admin-token", "s3cret", "--admin-token=s3cret", "--name", "a b"})
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "'a b'") {
		t.Fatalf("commandLine = %q", got)
	}
}
