package config

import (
	"errors"
	"net/url"
	"os"
	"time"
)

// Upstream is upstream mode: tokengw becomes the token URL clients use in
// front of an existing identity provider (TokenURL set turns it on).
type Upstream struct {
	TokenURL      string          `koanf:"token_url"`      // the provider's token endpoint; "" = upstream mode off
	RevocationURL string          `koanf:"revocation_url"` // the provider's RFC 7009 endpoint; "" = revocation is refused
	Timeout       time.Duration   `koanf:"timeout"`        // per upstream call
	ExpiryMargin  time.Duration   `koanf:"expiry_margin"`  // subtracted from the provider's expiry in every expires_in
	Refresh       UpstreamRefresh `koanf:"refresh"`
	TLS           UpstreamTLS     `koanf:"tls"`
}

// UpstreamRefresh is the replay of a refresh_token grant's success.
type UpstreamRefresh struct {
	ReplayWindow time.Duration `koanf:"replay_window"` // how long a success is replayed; at most 60s
	MaxReplays   int           `koanf:"max_replays"`   // replays per success; 0 = none (concurrent callers still share the call)
	// NegativeTTL is how long the provider's invalid_grant to one exact
	// refresh request is answered again without a call: at most 5s
	// (upstream.MaxNegativeTTL); 0 means the default, 2s, as in
	// upstream.Options; a negative duration turns it off.
	NegativeTTL time.Duration `koanf:"negative_ttl"`
}

// UpstreamTLS configures the connection to the provider.
type UpstreamTLS struct {
	CAFile     string `koanf:"ca_file"`     // PEM roots instead of the system's; "" = system roots
	CertFile   string `koanf:"cert_file"`   // client certificate (mTLS), with key_file
	KeyFile    string `koanf:"key_file"`    //
	ServerName string `koanf:"server_name"` // overrides the name checked in the provider's certificate
}

// Enabled reports whether upstream mode is on.
func (u Upstream) Enabled() bool { return u.TokenURL != "" }

// Caps of the upstream section.
const (
	MaxUpstreamReplayWindow = 60 * time.Second
	maxUpstreamReplays      = 1000
	maxUpstreamTimeout      = 5 * time.Minute
	maxUpstreamNegativeTTL  = 5 * time.Second // upstream.MaxNegativeTTL
)

func upstreamDefaults() map[string]any {
	return map[string]any{
		"upstream.token_url":             "",
		"upstream.revocation_url":        "",
		"upstream.timeout":               "5s",
		"upstream.expiry_margin":         "10s",
		"upstream.refresh.replay_window": "5s",
		"upstream.refresh.max_replays":   10,
		"upstream.refresh.negative_ttl":  "2s",
		"upstream.tls.ca_file":           "",
		"upstream.tls.cert_file":         "",
		"upstream.tls.key_file":          "",
		"upstream.tls.server_name":       "",
	}
}

func (u Upstream) validate() error {
	if !u.Enabled() {
		if u.RevocationURL != "" {
			return bad("upstream.revocation_url", "needs upstream.token_url")
		}
		return nil
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(upstreamURL("upstream.token_url", u.TokenURL))
	if u.RevocationURL != "" {
		add(upstreamURL("upstream.revocation_url", u.RevocationURL))
	}
	if u.Timeout <= 0 || u.Timeout > maxUpstreamTimeout {
		add(bad("upstream.timeout", "must be a positive duration up to %v, got %v", maxUpstreamTimeout, u.Timeout))
	}
	if u.ExpiryMargin < 0 || u.ExpiryMargin > time.Hour {
		add(bad("upstream.expiry_margin", "must be between 0 and 1h, got %v", u.ExpiryMargin))
	}
	if u.Refresh.ReplayWindow < 0 || u.Refresh.ReplayWindow > MaxUpstreamReplayWindow {
		add(bad("upstream.refresh.replay_window", "must be between 0 and %v, got %v", MaxUpstreamReplayWindow, u.Refresh.ReplayWindow))
	}
	if u.Refresh.MaxReplays < 0 || u.Refresh.MaxReplays > maxUpstreamReplays {
		add(bad("upstream.refresh.max_replays", "must be between 0 and %d, got %d", maxUpstreamReplays, u.Refresh.MaxReplays))
	}
	if u.Refresh.NegativeTTL > maxUpstreamNegativeTTL {
		add(bad("upstream.refresh.negative_ttl", "must be at most %v (a negative duration turns it off), got %v", maxUpstreamNegativeTTL, u.Refresh.NegativeTTL))
	}
	t := u.TLS
	for key, path := range map[string]string{"upstream.tls.ca_file": t.CAFile, "upstream.tls.cert_file": t.CertFile, "upstream.tls.key_file": t.KeyFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			add(bad(key, "cannot read %q: %v", path, errors.Unwrap(err)))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add(bad("upstream.tls.cert_file", "cert_file and key_file go together"))
	}
	return errors.Join(errs...)
}

func upstreamURL(key, v string) error {
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Fragment != "" || u.User != nil {
		return bad(key, "must be an absolute http(s) URL without user info or fragment, got %q", v)
	}
	return nil
}
