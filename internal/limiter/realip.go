package limiter

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the caller of r, for keying per-IP limits.
//
// It is the peer of the connection (r.RemoteAddr) unless that peer lies in
// one of the trusted proxy prefixes. Then X-Forwarded-For is read: all its
// header fields concatenated in order, as a comma-separated list of hops
// that each proxy extended on the right. Walking from the right, every hop
// inside a trusted prefix is skipped and the first one outside is the
// client: entries to its left were written by the client and cannot be
// believed. A hop that is not an IP address (empty, "unknown", garbage) ends
// the walk, and the last good address seen (the right-most trusted hop, or
// the peer) is returned; so is the left-most hop when every hop is trusted.
//
// Hops may carry a port ("192.0.2.1:4711", "[2001:db8::1]:443"), IPv6
// brackets, and surrounding spaces or tabs. Results are normalized for use
// as map keys: IPv4-mapped IPv6 addresses are unmapped and zones dropped.
// Trusted prefixes should be written in plain IPv4 or IPv6 form (not
// IPv4-mapped). The zero Addr is returned when RemoteAddr holds no IP
// address (e.g. a Unix socket); callers decide how to key that. For per-IP
// limits, consider keying IPv6 callers by their /64 (netip.Addr.Prefix),
// since one host commonly holds a whole /64 and could otherwise rotate
// through fresh buckets.
//
// ClientIP does not allocate, and its work is linear in the size of the
// headers. Behind [ConnContext] it does not parse the peer either.
//
// Why ours and not chi's: middleware.RealIP (deprecated) believes
// True-Client-IP, X-Real-IP and the left-most hop from any peer. chi v5.5's
// ClientIPFromXFF walks right to left over trusted prefixes as this does,
// but it fails closed — an unparseable hop, or a chain of trusted hops
// only, leaves no client address at all — while a per-caller limit needs a
// key for every request: with none, a caller behind the proxy could escape
// its failed-authentication bucket by sending a garbage hop. It also panics
// without a trusted prefix (ours then simply uses the peer), does not take
// hops with ports, and copies the request into a new context on every call,
// where this returns a value without allocating.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, ok := r.Context().Value(peerKey{}).(netip.Addr)
	if !ok {
		peer, ok = parseRemoteAddr(r.RemoteAddr)
	}
	if !ok || !inPrefixes(peer, trusted) {
		return peer
	}
	last := peer
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for {
			j := strings.LastIndexByte(v, ',')
			a, ok := parseHop(v[j+1:])
			if !ok {
				return last
			}
			if !inPrefixes(a, trusted) {
				return a
			}
			last = a
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return last
}

// peerKey is the context key of the peer address ConnContext records.
type peerKey struct{}

// ConnContext is an http.Server.ConnContext that records the peer address
// of c, normalized as ClientIP normalizes it, so that ClientIP reads it
// from the request's context instead of parsing r.RemoteAddr on every
// request of the connection. A connection that is not TCP records nothing
// and its requests are parsed as before. A server using it must not
// rewrite r.RemoteAddr in middleware: ClientIP would not see the change.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a := ta.AddrPort().Addr(); a.IsValid() {
			return context.WithValue(ctx, peerKey{}, normalize(a))
		}
	}
	return ctx
}

func parseRemoteAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a), true
	}
	return netip.Addr{}, false
}

// parseHop parses one X-Forwarded-For element: an address, optionally in
// brackets or with a port, with optional whitespace around it.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return normalize(a), true
		}
	}
	return netip.Addr{}, false
}

func normalize(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
