package clients

import (
	"slices"

	"github.com/tokengw/tokengw/internal/store"
)

// GrantClientCredentials is the grant_type of RFC 6749 §4.4.
const GrantClientCredentials = "client_credentials"

// DefaultGrantTypes returns the grant types of a client that names none.
func DefaultGrantTypes() []string { return []string{GrantClientCredentials} }

// SupportedGrant reports whether a client registration may name grant.
func SupportedGrant(grant string) bool {
	switch grant {
	case GrantClientCredentials:
		return true
	}
	return false
}

// GrantAllowed reports whether c may use grant: one of its GrantTypes, or
// of DefaultGrantTypes when it names none.
func GrantAllowed(c store.Client, grant string) bool {
	if c.GrantTypes == nil {
		return grant == GrantClientCredentials
	}
	return slices.Contains(c.GrantTypes, grant)
}
