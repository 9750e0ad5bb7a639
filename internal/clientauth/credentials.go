package clientauth

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/tokengw/tokengw/internal/oauth"
)

// Method is how a client authenticated, named as in the
// token_endpoint_auth_method registry (RFC 7591 §2).
type Method string

// The client authentication methods.
const (
	// MethodBasic: HTTP Basic with the form-encoded id and secret
	// (RFC 6749 §2.3.1).
	MethodBasic Method = "client_secret_basic"
	// MethodPost: client_id and client_secret in the request body
	// (RFC 6749 §2.3.1).
	MethodPost Method = "client_secret_post"
)

// There is no method "none": RFC 6749 §4.4 says "The client credentials
// grant type MUST only be used by confidential clients."

// Credentials are what a client presented. Secret is as sent (decoded), and
// is never logged.
type Credentials struct {
	ID     string
	Secret string
	Method Method
	// Budget, when set, is charged right before a hash verification runs
	// for these credentials (Authenticate refuses with 429 when it is
	// spent) and refunded when the secret matches.
	Budget Budget
}

// Budget is a caller's allowance of failed client authentications, taken
// before the slow work it guards so that concurrent requests cannot
// multiply it (a check before the hash and a charge after it would let a
// burst of wrong secrets all run). A cache hit costs nothing.
type Budget interface {
	// Take charges one verification; false refuses it, with how long the
	// caller should wait.
	Take() (ok bool, retryAfter time.Duration)
	// Refund gives back the charge of a verification that matched.
	Refund()
}

// The descriptions FromRequest and Authenticate put on their errors.
const (
	descAuthRequired = "client authentication required"
	descAuthFailed   = "client authentication failed"
	descMalformed    = "malformed HTTP Basic credentials"
	descTwoMethods   = "more than one client authentication method: use HTTP Basic or client_secret in the body, not both"
)

// FromRequest extracts the client credentials of a token-endpoint request.
// form is the parsed request body (the caller has already rejected repeated
// parameters, RFC 6749 §3.2).
//
// Errors are *oauth.Error: oauth.ErrInvalidClient with the Basic challenge
// when credentials are missing or the Basic header is malformed,
// oauth.ErrInvalidRequest when the client used more than one method.
func FromRequest(r *http.Request, form oauth.Form) (Credentials, error) {
	return fromRequest(r, form)
}

// FromRequestValues is FromRequest for a body parsed into url.Values
// (upstream mode keeps its form so).
func FromRequestValues(r *http.Request, form url.Values) (Credentials, error) {
	return fromRequest(r, valuesParams(form))
}

// params is what FromRequest reads of a parsed body: oauth.Form, or
// url.Values through valuesParams.
type params interface {
	Get(key string) string
	Has(key string) bool
	Count(key string) int
}

// valuesParams is url.Values as params.
type valuesParams url.Values

func (v valuesParams) Get(key string) string { return url.Values(v).Get(key) }
func (v valuesParams) Has(key string) bool   { return url.Values(v).Has(key) }
func (v valuesParams) Count(key string) int  { return len(v[key]) }

func fromRequest[P params](r *http.Request, form P) (Credentials, error) {
	auth := r.Header["Authorization"] // Header.Values without canonicalising a canonical key
	if len(auth) > 1 {
		return Credentials{}, oauth.ErrInvalidRequest.WithDescription("more than one Authorization header")
	}
	if form.Count("client_id") > 1 || form.Count("client_secret") > 1 {
		// RFC 6749 §3.2: "Request and response parameters MUST NOT be
		// included more than once." The caller checks; this keeps
		// FromRequest safe on its own.
		return Credentials{}, oauth.ErrInvalidRequest.WithDescription("repeated client_id or client_secret")
	}
	bodySecret := form.Has("client_secret")
	bodyID, hasBodyID := form.Get("client_id"), form.Has("client_id")

	if len(auth) == 1 {
		// RFC 6749 §2.3: "The client MUST NOT use more than one
		// authentication method in each request."
		if bodySecret {
			return Credentials{}, oauth.ErrInvalidRequest.WithDescription(descTwoMethods)
		}
		id, secret, err := parseBasic(auth[0])
		if err != nil {
			return Credentials{}, err
		}
		// A body client_id that names the same client is harmless (some
		// libraries always send it); one naming another client is a second,
		// conflicting identification.
		if hasBodyID && bodyID != id {
			return Credentials{}, oauth.ErrInvalidRequest.WithDescription("client_id does not match the HTTP Basic client identifier")
		}
		return Credentials{ID: id, Secret: secret, Method: MethodBasic}, nil
	}

	if !hasBodyID || bodyID == "" {
		if bodySecret {
			return Credentials{}, oauth.ErrInvalidRequest.WithDescription("client_secret without client_id")
		}
		return Credentials{}, oauth.ErrInvalidClient.WithDescription(descAuthRequired).WithBasicChallenge()
	}
	id := bodyID
	if !ValidClientID(id) {
		return Credentials{}, oauth.ErrInvalidRequest.WithDescription("client_id has characters outside %x20-7E (RFC 6749 Appendix A.1)")
	}
	if !bodySecret {
		// §2.3.1 lets a client omit client_secret when its secret is the
		// empty string; tokengw has no such clients, and §4.4 allows only
		// confidential clients, so an id alone is no authentication.
		return Credentials{}, oauth.ErrInvalidClient.WithDescription(descAuthRequired).WithBasicChallenge()
	}
	return Credentials{ID: id, Secret: form.Get("client_secret"), Method: MethodPost}, nil
}

// parseBasic decodes an Authorization header value of the Basic scheme
// (RFC 7617 §2) and form-decodes both halves (RFC 6749 §2.3.1).
func parseBasic(h string) (id, secret string, err error) {
	malformed := func() error { return oauth.ErrInvalidClient.WithDescription(descMalformed).WithBasicChallenge() }
	scheme, token, _ := strings.Cut(strings.TrimSpace(h), " ")
	// RFC 7235 §2.1: "auth-scheme = token", matched case-insensitively
	// ("It uses a case-insensitive token as a means to identify the
	// authentication scheme").
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", oauth.ErrInvalidClient.WithDescription("unsupported authentication scheme: use Basic").WithBasicChallenge()
	}
	// "credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]"
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", "", malformed()
	}
	// Decoded on the stack when it fits, so the credentials cost one
	// string, not a byte slice and a string.
	var stack [192]byte
	raw := stack[:0]
	if n := base64.StdEncoding.DecodedLen(len(token)); n > len(stack) {
		raw = make([]byte, 0, n)
	}
	// AppendDecode only reads src: a view of token's bytes spares the copy
	// []byte(token) makes of a token longer than 32 bytes.
	raw, derr := base64.StdEncoding.AppendDecode(raw, unsafe.Slice(unsafe.StringData(token), len(token)))
	if derr != nil {
		return "", "", malformed()
	}
	// RFC 7617 §2: "the user-id and password are separated by a single
	// colon (":") character"; the user-id cannot contain one, the password
	// can. After form-decoding, either may.
	user, pass, ok := strings.Cut(string(raw), ":")
	clear(raw) // the secret does not stay on the stack or heap in clear
	if !ok {
		return "", "", malformed()
	}
	// RFC 6749 §2.3.1: "The client identifier is encoded using the
	// application/x-www-form-urlencoded encoding algorithm per Appendix B,
	// and the encoded value is used as the username; the client password is
	// encoded using the same algorithm and used as the password."
	id, uerr := url.QueryUnescape(user)
	secret, perr := url.QueryUnescape(pass)
	if uerr != nil || perr != nil || id == "" || !ValidClientID(id) {
		return "", "", malformed()
	}
	return id, secret, nil
}

// ValidClientID reports whether id is a well-formed client identifier: not
// empty, and only printable ASCII (RFC 6749 Appendix A.1:
// "client-id = *VSCHAR", "VSCHAR = %x20-7E"). Configuration and the client
// registry should refuse ids it rejects, since such clients could never
// authenticate.
func ValidClientID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
