package clientauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengw/tokengw/internal/oauth"
)

func basic(userpass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))
}

func TestFromRequest(t *testing.T) {
	tests := []struct {
		name    string
		auth    []string // Authorization header values
		body    string
		want    Credentials
		wantErr *oauth.Error // sentinel; nil: success
		desc    string       // wanted error_description, when set
		noChal  bool         // error must not carry the Basic challenge
	}{
		{name: "basic", auth: []string{basic("app:s3cret")}, want: Credentials{ID: "app", Secret: "s3cret", Method: MethodBasic}},
		{name: "basic scheme lower case", auth: []string{"basic " + base64.StdEncoding.EncodeToString([]byte("app:s"))}, want: Credentials{ID: "app", Secret: "s", Method: MethodBasic}},
		{name: "basic scheme upper case, extra spaces", auth: []string{"BASIC   " + base64.StdEncoding.EncodeToString([]byte("app:s")) + " "}, want: Credentials{ID: "app", Secret: "s", Method: MethodBasic}},
		{name: "basic encoded colon in id, raw colon in secret", auth: []string{basic("a%3Ab:p:w")}, want: Credentials{ID: "a:b", Secret: "p:w", Method: MethodBasic}},
		{name: "basic plus is space", auth: []string{basic("my+app:se+cret")}, want: Credentials{ID: "my app", Secret: "se cret", Method: MethodBasic}},
		{name: "basic percent escapes", auth: []string{basic("c%25d:s%2Bx%20y")}, want: Credentials{ID: "c%d", Secret: "s+x y", Method: MethodBasic}},
		{name: "basic empty secret", auth: []string{basic("app:")}, want: Credentials{ID: "app", Secret: "", Method: MethodBasic}},
		{name: "basic with equal body client_id", auth: []string{basic("my+app:s")}, body: "client_id=my+app", want: Credentials{ID: "my app", Secret: "s", Method: MethodBasic}},
		{name: "basic with other body client_id", auth: []string{basic("app:s")}, body: "client_id=other", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "basic and body secret", auth: []string{basic("app:s")}, body: "client_id=app&client_secret=s", wantErr: oauth.ErrInvalidRequest, desc: descTwoMethods, noChal: true},
		{name: "basic and empty body secret", auth: []string{basic("app:s")}, body: "client_secret=", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "malformed header and body secret", auth: []string{"Basic !!!"}, body: "client_id=app&client_secret=s", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "two authorization headers", auth: []string{basic("a:s"), basic("b:s")}, wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "basic bad base64", auth: []string{"Basic !!!"}, wantErr: oauth.ErrInvalidClient, desc: descMalformed},
		{name: "basic unpadded base64", auth: []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte("app:s"))}, wantErr: oauth.ErrInvalidClient},
		{name: "basic no colon", auth: []string{basic("app")}, wantErr: oauth.ErrInvalidClient, desc: descMalformed},
		{name: "basic bad escape in id", auth: []string{basic("a%zz:s")}, wantErr: oauth.ErrInvalidClient, desc: descMalformed},
		{name: "basic bad escape in secret", auth: []string{basic("app:100%")}, wantErr: oauth.ErrInvalidClient, desc: descMalformed},
		{name: "basic empty id", auth: []string{basic(":s")}, wantErr: oauth.ErrInvalidClient, desc: descMalformed},
		{name: "basic control character in id", auth: []string{basic("a%0Ab:s")}, wantErr: oauth.ErrInvalidClient},
		{name: "basic without credentials", auth: []string{"Basic"}, wantErr: oauth.ErrInvalidClient},
		{name: "basic with empty token", auth: []string{"Basic "}, wantErr: oauth.ErrInvalidClient},
		{name: "empty header", auth: []string{""}, wantErr: oauth.ErrInvalidClient},
		{name: "bearer scheme", auth: []string{"Bearer abc"}, wantErr: oauth.ErrInvalidClient},
		{name: "scheme prefix only", auth: []string{"Basicx " + base64.StdEncoding.EncodeToString([]byte("app:s"))}, wantErr: oauth.ErrInvalidClient},
		{name: "post", body: "client_id=app&client_secret=s%3Acr+et", want: Credentials{ID: "app", Secret: "s:cr et", Method: MethodPost}},
		{name: "post empty secret", body: "client_id=app&client_secret=", want: Credentials{ID: "app", Secret: "", Method: MethodPost}},
		{name: "post id only", body: "client_id=app", wantErr: oauth.ErrInvalidClient, desc: descAuthRequired},
		{name: "post secret only", body: "client_secret=s", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "post empty id", body: "client_id=&client_secret=s", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "post control character in id", body: "client_id=a%00b&client_secret=s", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "post repeated client_id", body: "client_id=a&client_id=a&client_secret=s", wantErr: oauth.ErrInvalidRequest, noChal: true},
		{name: "nothing", body: "grant_type=client_credentials", wantErr: oauth.ErrInvalidClient, desc: descAuthRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
			for _, v := range tt.auth {
				r.Header.Add("Authorization", v)
			}
			form, _, err := oauth.ParseRequestForm(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FromRequest(r, form)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("FromRequest: %v", err)
				}
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != (Credentials{}) {
				t.Errorf("credentials %+v returned with an error", got)
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) {
				t.Fatalf("err %T is not *oauth.Error", err)
			}
			if tt.desc != "" && oe.Description != tt.desc {
				t.Errorf("description %q, want %q", oe.Description, tt.desc)
			}
			// RFC 6749 §5.2: a 401 carries WWW-Authenticate.
			if wantChal := !tt.noChal; oe.BasicChallenge != wantChal {
				t.Errorf("BasicChallenge = %v, want %v", oe.BasicChallenge, wantChal)
			}
		})
	}
}

// TestFromRequestOAuth2Client checks interoperability with
// golang.org/x/oauth2, which form-encodes id and secret into the Basic
// header as RFC 6749 §2.3.1 says, and with its client_secret_post style.
func TestFromRequestOAuth2Client(t *testing.T) {
	const id, secret = "svc:a+b %c/~", "p@ss:w%rd+ ~"
	for _, tt := range []struct {
		name   string
		style  oauth2.AuthStyle
		method Method
	}{
		{"header", oauth2.AuthStyleInHeader, MethodBasic},
		{"params", oauth2.AuthStyleInParams, MethodPost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			type result struct {
				c   Credentials
				err error
			}
			results := make(chan result, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil {
					t.Error(err)
				}
				c, err := FromRequestValues(r, r.PostForm) // upstream mode's path
				results <- result{c, err}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"access_token":"x","token_type":"Bearer","expires_in":60}`))
			}))
			defer srv.Close()
			cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: srv.URL, AuthStyle: tt.style}
			if _, err := cfg.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := <-results
			if want := (Credentials{ID: id, Secret: secret, Method: tt.method}); got.err != nil || got.c != want {
				t.Fatalf("FromRequest = %+v, %v; want %+v", got.c, got.err, want)
			}
		})
	}
}

// FuzzFromRequest: FromRequest never panics; every error is an *oauth.Error
// (invalid_client or invalid_request); a success names a valid client id;
// Basic credentials survive a round trip through the client's encoding.
func FuzzFromRequest(f *testing.F) {
	f.Add(basic("app:s3cret"), "")
	f.Add(basic("a%3Ab:p:w"), "client_id=a:b")
	f.Add("basic "+base64.StdEncoding.EncodeToString([]byte("my+app:%")), "")
	f.Add("", "client_id=app&client_secret=s")
	f.Add("", "client_id=&client_secret=")
	f.Add("Bearer x", "client_secret=s")
	f.Add(basic(":"), "client_id=")
	f.Fuzz(func(t *testing.T, auth, body string) {
		r := &http.Request{Method: http.MethodPost, Header: http.Header{}}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		form, _, _ := oauth.ParseRequestForm(body) // whatever parsed before an error
		c, err := FromRequest(r, form)
		if err != nil {
			var oe *oauth.Error
			if !errors.As(err, &oe) || !(errors.Is(err, oauth.ErrInvalidClient) || errors.Is(err, oauth.ErrInvalidRequest)) {
				t.Fatalf("unexpected error %v", err)
			}
			if errors.Is(err, oauth.ErrInvalidClient) && !oe.BasicChallenge {
				t.Fatalf("invalid_client without the Basic challenge: %v", err)
			}
			return
		}
		if c.ID == "" || !ValidClientID(c.ID) {
			t.Fatalf("success with id %q", c.ID)
		}
		switch c.Method {
		case MethodBasic:
			enc := basic(url.QueryEscape(c.ID) + ":" + url.QueryEscape(c.Secret))
			r2 := &http.Request{Header: http.Header{"Authorization": {enc}}}
			c2, err := FromRequest(r2, oauth.Form{})
			if err != nil || c2 != c {
				t.Fatalf("round trip of %+v: %+v, %v", c, c2, err)
			}
		case MethodPost:
			if c.ID != form.Get("client_id") || c.Secret != form.Get("client_secret") || auth != "" {
				t.Fatalf("post credentials %+v do not match the form %v", c, form)
			}
		default:
			t.Fatalf("method %q", c.Method)
		}
	})
}

func TestValidClientID(t *testing.T) {
	for id, want := range map[string]bool{
		"":                       false,
		"app":                    true,
		"a b:c%d~":               true,
		"tab\tid":                false,
		"nul\x00":                false,
		"del\x7f":                false,
		"caf\xc3\xa9":            false,
		strings.Repeat("x", 300): true,
	} {
		if got := ValidClientID(id); got != want {
			t.Errorf("ValidClientID(%q) = %v, want %v", id, got, want)
		}
	}
}
