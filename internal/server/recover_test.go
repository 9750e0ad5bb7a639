package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRecovererAnswersJSON500AndLogsTheStack: a panicking handler becomes a
// JSON server_error with the no-store headers, and the log gets the stack.
func TestRecovererAnswersJSON500AndLogsTheStack(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	h := s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom in a handler")
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/oauth2/token", nil))
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 500 || body["error"] != "server_error" {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "boom") || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("body or headers: %q %v", w.Body, w.Header())
	}
	if !strings.Contains(logs.String(), "boom in a handler") || !strings.Contains(logs.String(), "recover_test.go") {
		t.Fatalf("log lacks the panic or its stack: %s", logs.String())
	}
	// http.ErrAbortHandler keeps its meaning: it is re-panicked for net/http.
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler re-panicked", v)
		}
	}()
	s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })).
		ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
}
