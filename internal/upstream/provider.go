package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/config"
)

// maxProviderBody caps what tokengw reads of a provider's answer.
const maxProviderBody = 1 << 20

// errUnavailable marks a provider that did not answer usefully: connection
// failure, timeout, 5xx, or a success that is not a token response.
var errUnavailable = errors.New("upstream: provider unavailable")

// reply is a provider's answer as tokengw passes it back.
type reply struct {
	status int
	header http.Header // the headers worth passing back
	body   []byte
}

// passedHeaders are the provider's headers a pass-through keeps.
func passedHeaders() [6]string {
	return [...]string{"Content-Type", "Cache-Control", "Pragma", "WWW-Authenticate", "Retry-After", "DPoP-Nonce"}
}

// forwardedHeaders are the caller's headers sent on to the provider.
func forwardedHeaders() [5]string {
	return [...]string{"Authorization", "Content-Type", "Accept", "DPoP", "User-Agent"}
}

// provider posts forms to the identity provider.
type provider struct {
	client  *http.Client
	timeout time.Duration
}

// post sends body to url with the caller's headers and returns the answer.
// A transport failure, a timeout or a 5xx is errUnavailable (wrapped with
// the cause); any other status is a reply.
func (p provider) post(ctx context.Context, url string, in http.Header, body string) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return reply{}, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	for _, h := range forwardedHeaders() {
		if v := in.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody+1))
	if err != nil {
		return reply{}, fmt.Errorf("%w: reading the answer: %w", errUnavailable, err)
	}
	if len(b) > maxProviderBody {
		return reply{}, fmt.Errorf("%w: answer larger than %d bytes", errUnavailable, maxProviderBody)
	}
	if resp.StatusCode >= 500 {
		return reply{}, fmt.Errorf("%w: status %d", errUnavailable, resp.StatusCode)
	}
	out := reply{status: resp.StatusCode, header: http.Header{}, body: b}
	for _, h := range passedHeaders() {
		if v := resp.Header.Values(h); len(v) > 0 {
			out.header[h] = v
		}
	}
	return out, nil
}

// success is a parsed token response (RFC 6749 §5.1).
type success struct {
	fields    map[string]json.RawMessage // every member but expires_in
	expiresIn int64                      // -1 when the provider sent none
}

// parseSuccess reads a 200 token response; ok is false for anything that
// is not a JSON object with an access_token string and, when present, a
// non-negative integer expires_in.
func parseSuccess(b []byte) (success, bool) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return success{}, false
	}
	var at string
	if err := json.Unmarshal(fields["access_token"], &at); err != nil || at == "" {
		return success{}, false
	}
	s := success{fields: fields, expiresIn: -1}
	if raw, ok := fields["expires_in"]; ok {
		// Some providers send it as a string ("3600").
		var n json.Number
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return success{}, false
		}
		switch x := v.(type) {
		case json.Number:
			n = x
		case string:
			n = json.Number(x)
		default:
			return success{}, false
		}
		e, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || e < 0 || e > 1<<31 {
			return success{}, false
		}
		s.expiresIn = e
		delete(fields, "expires_in")
	}
	return s, true
}

// stringField returns a string member of a success ("" when absent).
func (s success) stringField(name string) string {
	var v string
	_ = json.Unmarshal(s.fields[name], &v)
	return v
}

// NewHTTPClient builds the client for the provider from upstream.tls.
func NewHTTPClient(c config.UpstreamTLS) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.ForceAttemptHTTP2 = true
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream: tls.ca_file: no PEM certificate in %s", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tc
	// Redirects are not followed: a token endpoint that redirects a POST
	// with credentials is misconfigured, and the answer goes back as sent.
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, nil
}
