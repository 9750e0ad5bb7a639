package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzTokenHandler sends arbitrary methods, content types, Authorization
// headers and bodies through the whole public handler: no input may panic,
// produce a 5xx or a non-JSON answer, or get a 200 without a token.
func FuzzTokenHandler(f *testing.F) {
	auth := basic("demo", demoSecret).Get("Authorization")
	seeds := []struct{ method, ctype, authz, body string }{
		{"POST", "application/x-www-form-urlencoded", auth, "grant_type=client_credentials"},
		{"POST", "application/x-www-form-urlencoded", auth, "grant_type=client_credentials&scope=read"},
		{"POST", "application/x-www-form-urlencoded", "", "grant_type=client_credentials&client_id=demo&client_secret=demo-secret"},
		{"POST", "application/x-www-form-urlencoded; charset=utf-8", "Basic ZGVtbzpkZW1vLXNlY3JldA==", "grant_type=client_credentials&scope=%zz"},
		{"POST", "text/plain", "Bearer x", "\x00\xff"},
		{"GET", "", "", ""},
		{"POST", "application/x-www-form-urlencoded", "Basic Og==", "grant_type=a&grant_type=b"},
		{"POST", "multipart/form-data; boundary=x", "", "--x--"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.ctype, s.authz, s.body)
	}
	g := start(f, testConfig(f), nil)
	h := g.app.Server.Handler()
	f.Fuzz(func(t *testing.T, method, ctype, authz, body string) {
		if !validMethod(method) {
			method = "POST"
		}
		r := httptest.NewRequest(method, "/oauth2/token", strings.NewReader(body))
		if ctype != "" {
			r.Header["Content-Type"] = []string{ctype}
		}
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q %q %q: status %d: %s", method, ctype, authz, body, w.Code, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil && method != "HEAD" {
			t.Fatalf("non-JSON answer %d: %q", w.Code, w.Body)
		}
		if w.Code == 200 && out["access_token"] == nil {
			t.Fatalf("200 without a token: %q", w.Body)
		}
		if w.Code != 200 && out["access_token"] != nil {
			t.Fatalf("%d with a token", w.Code)
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}
