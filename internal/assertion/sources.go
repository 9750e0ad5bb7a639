package assertion

import (
	"crypto/sha256"
	"sync"
)

// DefaultMaxSources bounds the key sources a Sources pool holds.
const DefaultMaxSources = 10_000

// Sources hands out the key Source of a registration (an inline jwks or a
// jwks_uri), parsing an inline set once and sharing one Remote per URI, so
// that every client registered with the same jwks_uri shares its fetches
// and its cached set. Safe for concurrent use.
type Sources struct {
	remote RemoteOptions
	max    int

	mu      sync.Mutex
	inline  map[[32]byte]Static
	remotes map[string]*Remote
}

// NewSources builds a pool; remote configures jwks_uri fetching. max <= 0
// means DefaultMaxSources (each of inline sets and URIs).
func NewSources(remote RemoteOptions, max int) (*Sources, error) {
	if err := remote.defaults(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = DefaultMaxSources
	}
	return &Sources{remote: remote, max: max, inline: map[[32]byte]Static{}, remotes: map[string]*Remote{}}, nil
}

// For returns the Source of a registration with exactly one of jwks and
// jwksURI set. Its error wraps ErrKeySet for a bad inline set.
func (s *Sources) For(jwks, jwksURI string) (Source, error) {
	if jwks != "" && jwksURI != "" {
		return nil, ErrKeySet
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if jwksURI != "" {
		if r, ok := s.remotes[jwksURI]; ok {
			return r, nil
		}
		r, err := NewRemote(jwksURI, s.remote)
		if err != nil {
			return nil, err
		}
		if len(s.remotes) >= s.max {
			for k := range s.remotes { // arbitrary victim
				delete(s.remotes, k)
				break
			}
		}
		s.remotes[jwksURI] = r
		return r, nil
	}
	k := sha256.Sum256([]byte(jwks))
	if st, ok := s.inline[k]; ok {
		return st, nil
	}
	set, err := ParseJWKS([]byte(jwks), true)
	if err != nil {
		return nil, err
	}
	if len(s.inline) >= s.max {
		for k := range s.inline {
			delete(s.inline, k)
			break
		}
	}
	st := Static{Set: set}
	s.inline[k] = st
	return st, nil
}
