package limiter

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fd00::/8"),
	netip.MustParsePrefix("127.0.0.1/32"),
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		remote  string
		xff     []string // one element per X-Forwarded-For field
		trusted []netip.Prefix
		want    string // "" for the zero Addr
	}{
		{name: "direct", remote: "203.0.113.7:1234", want: "203.0.113.7"},
		{name: "direct ipv6", remote: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "untrusted peer ignores xff", remote: "203.0.113.7:1234", xff: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "no trusted prefixes ignores xff", remote: "10.0.0.1:80", xff: []string{"198.51.100.1"}, trusted: []netip.Prefix{}, want: "10.0.0.1"},
		{name: "trusted peer without xff", remote: "10.0.0.1:80", want: "10.0.0.1"},
		{name: "one proxy", remote: "10.0.0.1:80", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "spoofed left entries ignored", remote: "10.0.0.1:80", xff: []string{"1.2.3.4, 5.6.7.8, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "spoofed trusted entry left of client", remote: "10.0.0.1:80", xff: []string{"10.9.9.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "two proxies", remote: "10.0.0.1:80", xff: []string{"198.51.100.1, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "multiple fields concatenated", remote: "10.0.0.1:80", xff: []string{"1.1.1.1", "198.51.100.1, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "client in earlier field", remote: "10.0.0.1:80", xff: []string{"198.51.100.1", "10.0.0.2"}, want: "198.51.100.1"},
		{name: "all hops trusted", remote: "10.0.0.1:80", xff: []string{"10.0.0.3, 192.168.1.1"}, want: "10.0.0.3"},
		{name: "garbage right-most", remote: "10.0.0.1:80", xff: []string{"198.51.100.1, garbage"}, want: "10.0.0.1"},
		{name: "garbage after trusted hop", remote: "10.0.0.1:80", xff: []string{"garbage, 10.0.0.2"}, want: "10.0.0.2"},
		{name: "unknown token", remote: "10.0.0.1:80", xff: []string{"unknown"}, want: "10.0.0.1"},
		{name: "empty field", remote: "10.0.0.1:80", xff: []string{""}, want: "10.0.0.1"},
		{name: "empty field between", remote: "10.0.0.1:80", xff: []string{"198.51.100.1", "", "10.0.0.2"}, want: "10.0.0.2"},
		{name: "trailing comma", remote: "10.0.0.1:80", xff: []string{"198.51.100.1,"}, want: "10.0.0.1"},
		{name: "empty element", remote: "10.0.0.1:80", xff: []string{"198.51.100.1,,10.0.0.2"}, want: "10.0.0.2"},
		{name: "whitespace and tabs", remote: "10.0.0.1:80", xff: []string{" \t198.51.100.1\t ,  10.0.0.2 "}, want: "198.51.100.1"},
		{name: "hop with port", remote: "10.0.0.1:80", xff: []string{"198.51.100.1:5555"}, want: "198.51.100.1"},
		{name: "ipv6 hop with port", remote: "10.0.0.1:80", xff: []string{"[2001:db8::2]:443"}, want: "2001:db8::2"},
		{name: "ipv6 hop in brackets", remote: "10.0.0.1:80", xff: []string{"[2001:db8::2]"}, want: "2001:db8::2"},
		{name: "ipv4 in brackets is garbage", remote: "10.0.0.1:80", xff: []string{"[198.51.100.1]"}, want: "10.0.0.1"},
		{name: "ipv6 hop", remote: "[fd00::1]:80", xff: []string{"2001:db8::3, fd00::2"}, want: "2001:db8::3"},
		{name: "mapped hop unmapped", remote: "10.0.0.1:80", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "mapped trusted hop", remote: "10.0.0.1:80", xff: []string{"198.51.100.1, ::ffff:10.0.0.2"}, want: "198.51.100.1"},
		{name: "mapped trusted peer", remote: "[::ffff:10.0.0.1]:80", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "zone dropped", remote: "10.0.0.1:80", xff: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "peer zone dropped", remote: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "peer without port", remote: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "loopback proxy", remote: "127.0.0.1:9999", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "unix socket", remote: "@", xff: []string{"198.51.100.1"}, want: ""},
		{name: "empty remote", remote: "", want: ""},
		{name: "hostname is garbage", remote: "10.0.0.1:80", xff: []string{"198.51.100.1, proxy.example"}, want: "10.0.0.1"},
		{name: "obfuscated node is garbage", remote: "10.0.0.1:80", xff: []string{"_hidden"}, want: "10.0.0.1"},
		{name: "garbage left of client", remote: "10.0.0.1:80", xff: []string{"%%%, 198.51.100.1"}, want: "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			trusted := tc.trusted
			if trusted == nil {
				trusted = testTrusted
			}
			got := ClientIP(r, trusted)
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("ClientIP = %v, want the zero Addr", got)
				}
				return
			}
			if want := netip.MustParseAddr(tc.want); got != want {
				t.Fatalf("ClientIP = %v, want %v", got, want)
			}
		})
	}
}

func TestClientIPAllocs(t *testing.T) {
	r := &http.Request{RemoteAddr: "10.0.0.1:80", Header: http.Header{}}
	r.Header.Add("X-Forwarded-For", "1.2.3.4, 198.51.100.1, 10.0.0.2")
	r.Header.Add("X-Forwarded-For", "192.168.0.9")
	if n := testing.AllocsPerRun(100, func() { ClientIP(r, testTrusted) }); n != 0 {
		t.Errorf("ClientIP allocates %v times per call", n)
	}
}

// refClientIP is a plain reading of ClientIP's contract, for the fuzzer to
// compare against.
func refClientIP(remote string, xff []string, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseRemoteAddr(remote)
	if !ok || !inPrefixes(peer, trusted) {
		return peer
	}
	if len(xff) == 0 {
		return peer
	}
	hops := strings.Split(strings.Join(xff, ","), ",")
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return last
		}
		if !inPrefixes(a, trusted) {
			return a
		}
		last = a
	}
	return last
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "198.51.100.1, 10.0.0.2", "")
	f.Add("10.0.0.1:80", "1.1.1.1", "198.51.100.1, 10.0.0.2")
	f.Add("203.0.113.7:1234", "198.51.100.1", "")
	f.Add("[fd00::1]:80", "[2001:db8::2]:443, fd00::2", "garbage")
	f.Add("[::ffff:10.0.0.1]:80", "fe80::1%eth0,,", "::ffff:10.1.1.1")
	f.Add("@", "", "")
	f.Add("10.0.0.1", " \t10.0.0.3\t", "unknown, 10.0.0.4:1")
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		var xff []string
		for _, v := range []string{xff1, xff2} {
			if v != "" || len(xff) > 0 {
				r.Header.Add("X-Forwarded-For", v)
				xff = append(xff, v)
			}
		}
		got := ClientIP(r, testTrusted)
		if want := refClientIP(remote, xff, testTrusted); got != want {
			t.Fatalf("ClientIP = %v, reference = %v (remote %q, xff %q)", got, want, remote, xff)
		}
		peer, peerOK := parseRemoteAddr(remote)
		if !peerOK {
			if got.IsValid() {
				t.Fatalf("ClientIP = %v for a RemoteAddr %q without an address", got, remote)
			}
			return
		}
		if !got.IsValid() {
			t.Fatalf("zero Addr for a valid peer %v", peer)
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("ClientIP = %v is not normalized", got)
		}
		if !inPrefixes(peer, testTrusted) && got != peer {
			t.Fatalf("untrusted peer %v, but ClientIP = %v", peer, got)
		}
		// An IPv4 result other than the peer was written in a hop verbatim
		// (netip's IPv4 form is canonical; IPv6 hops may be spelled many ways).
		if got != peer && got.Is4() && !strings.Contains(strings.Join(xff, ","), got.String()) {
			t.Fatalf("ClientIP = %v appears neither as peer nor in X-Forwarded-For %q", got, xff)
		}
	})
}

// TestConnContextPeer: over a real listener, ClientIP behind ConnContext
// answers what it answers from r.RemoteAddr, for a direct caller and for a
// trusted peer's X-Forwarded-For, over IPv4 and IPv6 loopback; a request
// whose context lacks the record falls back to RemoteAddr.
func TestConnContextPeer(t *testing.T) {
	type seen struct{ fromCtx, parsed netip.Addr }
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Value(peerKey{}).(netip.Addr); !ok {
			t.Error("ConnContext recorded no peer for a TCP connection")
		}
		bare := r.WithContext(context.Background()) // no record: parses RemoteAddr
		got <- seen{ClientIP(r, testTrusted), ClientIP(bare, testTrusted)}
	})
	for _, network := range []string{"tcp4", "tcp6"} {
		ln, err := net.Listen(network, map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network])
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		srv := &http.Server{Handler: h, ConnContext: ConnContext}
		go func() { _ = srv.Serve(ln) }()
		for _, xff := range []string{"", "198.51.100.9"} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
			if xff != "" {
				req.Header.Set("X-Forwarded-For", xff)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			s := <-got
			want := netip.MustParseAddr(map[string]string{"tcp4": "127.0.0.1", "tcp6": "::1"}[network])
			if xff != "" && network == "tcp4" { // 127.0.0.1 is a trusted proxy here
				want = netip.MustParseAddr(xff)
			}
			if s.fromCtx != want || s.parsed != want {
				t.Errorf("%s xff %q: ClientIP %v from the connection, %v from RemoteAddr; want %v", network, xff, s.fromCtx, s.parsed, want)
			}
		}
		_ = srv.Close()
	}
}
