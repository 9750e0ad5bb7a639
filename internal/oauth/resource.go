package oauth

import (
	"net/url"
	"slices"
	"strings"
)

// MaxResources bounds the resource parameters of one request.
const MaxResources = 16

// maxResourceLen bounds one resource indicator.
const maxResourceLen = 2048

// ValidResource checks one RFC 8707 resource indicator (§2): "The value of
// the resource parameter MUST be an absolute URI, as specified by Section
// 4.3 of [RFC3986], which MAY include a query component, but MUST NOT
// include a fragment component."
func ValidResource(r string) error {
	if r == "" || len(r) > maxResourceLen {
		return &ResourceError{"must be an absolute URI of at most 2048 bytes"}
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; c <= 0x20 || c >= 0x7f {
			return &ResourceError{"must not hold spaces, controls or non-ASCII bytes"}
		}
	}
	u, err := url.Parse(r)
	switch {
	case err != nil:
		return &ResourceError{"must be an absolute URI"}
	case !u.IsAbs():
		return &ResourceError{"must be an absolute URI (with a scheme)"}
	case u.Fragment != "" || strings.Contains(r, "#"):
		return &ResourceError{"must not have a fragment"}
	}
	return nil
}

// ResourceError is a resource indicator ValidResource refuses; Reason
// says why, for callers that name the field themselves ("must not have a
// fragment").
type ResourceError struct{ Reason string }

func (e *ResourceError) Error() string { return "oauth: a resource " + e.Reason }

// ParseResources checks the resource parameters of a token request and
// returns them sorted and deduplicated. A malformed one is invalid_target
// (RFC 8707 §2: "the requested resource is invalid, missing, unknown, or
// malformed").
func ParseResources(values []string) ([]string, error) {
	if len(values) > MaxResources {
		return nil, ErrInvalidTarget.WithDescription("too many resource parameters")
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		if err := ValidResource(v); err != nil {
			return nil, ErrInvalidTarget.WithDescription("resource must be an absolute URI without a fragment")
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
