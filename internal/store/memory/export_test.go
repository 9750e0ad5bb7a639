package memory

// Held reports what the store holds, expired or not: tokens, reuse rows,
// and the entries of both expiry heaps.
func Held(s *Store) (tokens, currents, entries int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tokens), len(s.currents), len(s.tokenExpiry) + len(s.currentExpiry)
}
