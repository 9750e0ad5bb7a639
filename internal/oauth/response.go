package oauth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// TokenResponse is the successful access token response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// setNoStore sets the cache headers RFC 6749 §5.1 requires: "The
// authorization server MUST include the HTTP "Cache-Control" response header
// field with a value of "no-store" in any response containing tokens,
// credentials, or other sensitive information, as well as the "Pragma"
// response header field with a value of "no-cache"."
func setNoStore(h http.Header) {
	h["Cache-Control"] = hdrNoStore
	h["Pragma"] = hdrNoCache
}

// Header values shared by every response, assigned without Header.Set's
// per-call allocation. They are never modified.
var (
	hdrNoStore = []string{"no-store"}
	hdrNoCache = []string{"no-cache"}
	hdrJSON    = []string{"application/json"}
)

// WriteToken writes a §5.1 success response.
func WriteToken(w http.ResponseWriter, tr TokenResponse) {
	writeToken(w, tr, nil)
}

// TokenWriter writes §5.1 success responses, as WriteToken does, from a pool
// of buffers, so a response costs no allocation (one whose token or scope
// needs JSON escaping goes through encoding/json and does). A buffer is cleared before
// it goes back: it held a token. Safe for concurrent use.
type TokenWriter struct {
	bufs sync.Pool // of *[]byte
}

// Write writes tr to w.
func (t *TokenWriter) Write(w http.ResponseWriter, tr TokenResponse) {
	bp, _ := t.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = writeToken(w, tr, (*bp)[:0])
	clear(*bp)
	if cap(*bp) <= 4096 { // a JWT with many claims need not stay pooled
		t.bufs.Put(bp)
	}
}

// writeToken writes tr to w, building it in buf, and returns the buffer
// used.
func writeToken(w http.ResponseWriter, tr TokenResponse, buf []byte) []byte {
	// Hand-built JSON: the token is base64url and the scope is §3.3 ASCII
	// without '"' or '\', so neither needs escaping; this keeps the hot path
	// free of reflection. Anything else goes through encoding/json.
	if !jsonSafe(tr.AccessToken) || !jsonSafe(tr.TokenType) || !jsonSafe(tr.Scope) {
		writeJSON(w, http.StatusOK, tr)
		return buf
	}
	if need := 96 + len(tr.AccessToken) + len(tr.Scope); cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	buf = append(buf, `{"access_token":"`...)
	buf = append(buf, tr.AccessToken...)
	buf = append(buf, `","token_type":"`...)
	buf = append(buf, tr.TokenType...)
	buf = append(buf, `","expires_in":`...)
	buf = strconv.AppendInt(buf, tr.ExpiresIn, 10)
	if tr.Scope != "" {
		buf = append(buf, `,"scope":"`...)
		buf = append(buf, tr.Scope...)
		buf = append(buf, '"')
	}
	buf = append(buf, "}\n"...)
	h := w.Header()
	h["Content-Type"] = hdrJSON
	setNoStore(h)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	return buf
}

func jsonSafe(s string) bool {
	// Eight bytes at a time (a JWT access token is hundreds of bytes, and
	// this runs on every reuse hit), then the tail byte by byte.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8] // one bounds check; the eight loads combine into one
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		if x&swarHigh|swarLess(x, 0x20)|swarHas(x, 0x7f)|swarHas(x, '"')|swarHas(x, '\\')|
			swarHas(x, '<')|swarHas(x, '>')|swarHas(x, '&') != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if !jsonSafeByte(s[i]) {
			return false
		}
	}
	return true
}

// jsonSafeByte is jsonSafe for one byte: printable ASCII but '"', '\\',
// '<', '>', '&'.
func jsonSafeByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// Word-at-a-time byte tests ("Bit Twiddling Hacks", Sean Eron Anderson):
// exact answers to "does any byte of x ..." for eight bytes at once.
const (
	swarLow  = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// swarLess is not zero when some byte of x is below n (n <= 128).
func swarLess(x uint64, n byte) uint64 { return (x - swarLow*uint64(n)) &^ x & swarHigh }

// swarHas is not zero when some byte of x equals c.
func swarHas(x uint64, c byte) uint64 {
	v := x ^ (swarLow * uint64(c))
	return (v - swarLow) &^ v & swarHigh
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// WriteError writes err as a §5.2 error response. Anything that is not an
// *Error becomes a bare server_error: internal detail never reaches the body.
func WriteError(w http.ResponseWriter, err error) {
	oe := AsError(err)
	h := w.Header()
	if oe.BasicChallenge {
		h.Set("WWW-Authenticate", `Basic realm="tokengw", charset="UTF-8"`)
	}
	if oe.RetryAfter > 0 {
		h.Set("Retry-After", RetryAfterSeconds(oe.RetryAfter))
	}
	if oe.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	writeJSON(w, oe.Status, errorBody{Error: oe.Code, Description: oe.Description})
}

// WriteJSON writes v as JSON with the no-store cache headers. It is for the
// other protocol endpoints (introspection, metadata-like answers).
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setNoStore(h)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
