package oauth

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLeaveBody, over a real HTTP/1.1 listener with a 1 minute read
// timeout: a handler that answers without reading the body answers at once
// either way; a body that came with the headers is consumed and the
// connection kept (a second request on it is answered), one that never
// comes ends the connection after the answer instead of holding it until
// the read deadline (the test waits 20 s at most).
func TestLeaveBody(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		LeaveBody(w, r)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	srv.Config.ReadTimeout = time.Minute
	srv.Start()
	defer srv.Close()
	send := func(c net.Conn, body string) *http.Response {
		t.Helper()
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n%s", body)
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		resp.Body.Close()
		return resp
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	c := dial()
	if resp := send(c, "grant_type=client_credentials"); resp.StatusCode != 503 || resp.Close {
		t.Fatalf("body sent: %d, close %v; want 503 on a kept connection", resp.StatusCode, resp.Close)
	}
	if resp := send(c, "grant_type=client_credentials"); resp.StatusCode != 503 {
		t.Fatalf("second request on the kept connection: %d", resp.StatusCode)
	}
	if resp := send(dial(), "grant_type"); resp.StatusCode != 503 || !resp.Close {
		t.Fatalf("body held: %d, close %v; want 503 and the connection ended", resp.StatusCode, resp.Close)
	}
}
