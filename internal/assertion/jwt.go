package assertion

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxAssertionBytes bounds an assertion (client_assertion or assertion
// parameter) in its compact serialization.
const MaxAssertionBytes = 8 << 10

// Claims are the registered claims of a verified assertion (RFC 7519
// §4.1). Times are zero when the claim is absent. Callers must not modify
// Audience: it may be shared with the verified-JWT cache.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	NotBefore time.Time
	IssuedAt  time.Time
	JTI       string
}

// header is the part of a JWS protected header that is checked here.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// splitCompact splits a JWS compact serialization (RFC 7515 §7.1) into its
// three base64url segments.
func splitCompact(s string) (h, p, sig string, ok bool) {
	h, rest, ok1 := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || h == "" || p == "" || strings.IndexByte(sig, '.') >= 0 {
		return "", "", "", false
	}
	return h, p, sig, true
}

func decodeSegment(seg string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(seg)
}

// parseHeader decodes and checks a protected header: a JSON object with an
// allowed asymmetric alg and no crit (no extension is understood here, and
// RFC 7515 §4.1.11 says a recipient that does not understand one MUST
// reject the JWS). Embedded keys (jwk, jku, x5u, x5c) are ignored: keys
// come from the registration only.
func parseHeader(seg string) (header, error) {
	raw, err := decodeSegment(seg)
	if err != nil {
		return header{}, refused(CheckFormat, "header is not base64url")
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return header{}, refused(CheckFormat, "header is not a JSON object")
	}
	switch {
	case h.Alg == "":
		return header{}, refused(CheckAlg, "header has no alg")
	case !knownAlg(h.Alg):
		return header{}, refused(CheckAlg, fmt.Sprintf("alg %s is not accepted (asymmetric signatures only)", printable(h.Alg)))
	case len(h.Crit) > 0 && !bytes.Equal(h.Crit, []byte("null")):
		return header{}, refused(CheckFormat, "header has crit extensions")
	}
	return h, nil
}

// claimsJSON is the payload as sent.
type claimsJSON struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp json.Number     `json:"exp"`
	Nbf json.Number     `json:"nbf"`
	Iat json.Number     `json:"iat"`
	Jti string          `json:"jti"`
}

// parseClaims decodes a payload segment into Claims.
func parseClaims(seg string) (Claims, error) {
	raw, err := decodeSegment(seg)
	if err != nil {
		return Claims{}, refused(CheckFormat, "payload is not base64url")
	}
	var cj claimsJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&cj); err != nil {
		return Claims{}, refused(CheckFormat, "payload is not a JSON object of JWT claims")
	}
	if dec.More() {
		return Claims{}, refused(CheckFormat, "payload has data after the JSON object")
	}
	c := Claims{Issuer: cj.Iss, Subject: cj.Sub, JTI: cj.Jti}
	if c.Audience, err = parseAudience(cj.Aud); err != nil {
		return Claims{}, err
	}
	for _, f := range []struct {
		name string
		n    json.Number
		t    *time.Time
	}{{"exp", cj.Exp, &c.Expiry}, {"nbf", cj.Nbf, &c.NotBefore}, {"iat", cj.Iat, &c.IssuedAt}} {
		if f.n == "" {
			continue
		}
		t, ok := numericDate(f.n)
		if !ok {
			return Claims{}, refused(CheckFormat, f.name+" is not a NumericDate")
		}
		*f.t = t
	}
	return c, nil
}

// parseAudience accepts a string or an array of strings (RFC 7519 §4.1.3).
func parseAudience(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, refused(CheckFormat, "aud is neither a string nor an array of strings")
	}
	return many, nil
}

// maxNumericDate is the year 3000: a later date is a mistake, and bounding
// it keeps time arithmetic far from overflow.
const maxNumericDate = 32503680000

// numericDate parses RFC 7519's NumericDate: seconds since the epoch,
// possibly fractional.
func numericDate(n json.Number) (time.Time, bool) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// printable renders a value from an untrusted header for a description:
// at most 32 printable ASCII characters.
func printable(s string) string {
	b := make([]byte, 0, 34)
	b = append(b, '"')
	for i := 0; i < len(s) && i < 32; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(append(b, '"'))
}
