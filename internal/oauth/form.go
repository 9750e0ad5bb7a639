package oauth

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrBodyTooLarge is returned by FormReader.Read for a body longer than its
// limit.
var ErrBodyTooLarge = errors.New("oauth: request body too large")

// maxFormParams is net/url's default limit on the parameters of one query
// (GODEBUG urlmaxqueryparams=10000), kept so the parsers refuse what
// url.ParseQuery refuses.
const maxFormParams = 10000

// FormShape says what a parsed form holds that RFC 6749 §3.2 cares about,
// so that a caller enforcing it need not walk the form when neither is
// there (the common case).
type FormShape struct {
	Repeats bool // some parameter has more than one value
	Empties bool // some value is the empty string
}

// ParseFormShape parses an application/x-www-form-urlencoded body (upstream
// mode's requests, RFC 6749 Appendix B) into the same url.Values that
// url.ParseQuery returns, and fails exactly when it fails, and reports the
// form's shape. It is cheaper: the values of all parameters share one
// backing array (a parameter that repeats gets its own on its second
// value), and the map is sized once, so a three-parameter body costs two
// allocations instead of five. Unescaped keys and values are substrings of
// body.
func ParseFormShape(body string) (url.Values, FormShape, error) {
	n, err := formParams(body)
	if err != nil {
		return nil, FormShape{}, err
	}
	form := make(url.Values, n)
	vals := make([]string, n)
	used := 0
	shape, err := scanForm(body, func(k, v string) bool {
		if prev, ok := form[k]; ok {
			form[k] = append(prev, v) // cap is 1: a copy of its own
			return true
		}
		vals[used] = v
		form[k] = vals[used : used+1 : used+1]
		used++
		return false
	})
	return form, shape, err
}

// formParams is an upper bound of the parameters of body; an error when it
// passes url.ParseQuery's limit.
func formParams(body string) (int, error) {
	n := strings.Count(body, "&") + 1
	if n > maxFormParams {
		return 0, errors.New("oauth: number of form parameters exceeded limit")
	}
	return n, nil
}

// scanForm decodes body's parameters in order, as url.ParseQuery does, and
// hands each well-formed one to emit, which reports whether its key was
// seen before. The error is the first malformed pair's (the rest are still
// scanned, as url.ParseQuery does).
func scanForm(body string, emit func(k, v string) (repeat bool)) (FormShape, error) {
	var shape FormShape
	var err error
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		if strings.Contains(pair, ";") {
			err = fmt.Errorf("oauth: invalid semicolon separator in form")
			continue
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := unescape(k)
		if err1 == nil {
			v, err1 = unescape(v)
		}
		if err1 != nil {
			if err == nil {
				err = fmt.Errorf("oauth: %w", err1)
			}
			continue
		}
		if v == "" {
			shape.Empties = true
		}
		if emit(k, v) {
			shape.Repeats = true
		}
	}
	return shape, err
}

// FormReader reads request bodies of at most a fixed size through a pool of
// buffers, so a request costs one allocation (the string the form's values
// point into) however its body arrives. A buffer is cleared before it goes
// back to the pool: bodies carry client secrets and assertions.
type FormReader struct {
	max  int64
	bufs sync.Pool
}

// NewFormReader returns a FormReader for bodies of at most max bytes.
func NewFormReader(max int64) *FormReader {
	return &FormReader{max: max}
}

// Read returns all of r, or ErrBodyTooLarge once it has read more than the
// limit (the rest of r is left unread), or r's own error.
func (f *FormReader) Read(r io.Reader) (string, error) {
	bp, _ := f.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, min(f.max+1, 1024))
		bp = &b
	}
	buf := (*bp)[:0]
	defer func() {
		clear(buf[:cap(buf)])
		*bp = buf[:0]
		f.bufs.Put(bp)
	}()
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > f.max {
				return "", ErrBodyTooLarge
			}
			grown := make([]byte, len(buf), min(int64(2*cap(buf)), f.max+1))
			copy(grown, buf)
			clear(buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > f.max {
			return "", ErrBodyTooLarge
		}
		if errors.Is(err, io.EOF) {
			return string(buf), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// unescape is url.QueryUnescape (the same results, an error exactly when
// it fails), with the common case (nothing escaped: a base64url assertion)
// found by a vectorised scan, and an escaped value (a grant type URN)
// decoded in one pass into one allocation.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	var b strings.Builder // String() does not copy
	b.Grow(len(s))
	for s != "" {
		i := strings.IndexAny(s, "%+")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		if s[i] == '+' {
			b.WriteByte(' ')
			s = s[i+1:]
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("invalid URL escape %q", s[i:min(i+3, len(s))])
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		s = s[i+3:]
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unreadBodyGrace is how long LeaveBody lets net/http read what is left of
// a body before it answers: a body sent with its headers is in the
// connection's buffer already and takes microseconds.
const unreadBodyGrace = 100 * time.Millisecond

// LeaveBody prepares the answer to an HTTP/1 request whose body the handler
// does not read (a shed or refused request). Before it writes an answer,
// net/http reads the rest of an unread body to keep the connection; for a
// body that arrives slowly, or never, that would hold the answer until the
// read deadline. LeaveBody bounds that read by unreadBodyGrace: a body
// already sent is still consumed and the connection kept, one still on its
// way ends the connection after the answer. HTTP/2 streams have no such
// read, and are left alone.
func LeaveBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.ProtoMajor != 1 {
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(unreadBodyGrace))
}

const formType = "application/x-www-form-urlencoded"

// Admit checks, before any of r's body is read, that r is a form request
// this reader takes: an application/x-www-form-urlencoded body of at most
// its limit by Content-Length. A refusal is an *Error to answer with
// (invalid_request, or ErrRequestTooLarge), and LeaveBody has prepared
// the answer.
func (f *FormReader) Admit(w http.ResponseWriter, r *http.Request) *Error {
	var ct string
	if v := r.Header["Content-Type"]; len(v) > 0 { // Header.Get without canonicalising a canonical key
		ct = v[0]
	}
	if ct != formType { // the common case skips the parser
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formType {
			LeaveBody(w, r)
			return ErrInvalidRequest.WithDescription("content type must be application/x-www-form-urlencoded")
		}
	}
	if r.ContentLength > f.max {
		LeaveBody(w, r)
		return ErrRequestTooLarge
	}
	return nil
}
