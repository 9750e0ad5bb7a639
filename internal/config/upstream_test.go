package config

import (
	"errors"
	"testing"
)

func TestUpstreamKeys(t *testing.T) {
	ok := []string{"TOKENGW_UPSTREAM__TOKEN_URL=https://idp.example/token"}
	c, err := Load("", ok)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstream
	if !u.Enabled() || u.Timeout.String() != "5s" || u.ExpiryMargin.String() != "10s" ||
		u.Refresh.ReplayWindow.String() != "5s" || u.Refresh.MaxReplays != 10 || u.Refresh.NegativeTTL.String() != "2s" {
		t.Fatalf("defaults: %+v", u)
	}
	if c, err := Load("", append(ok, "TOKENGW_UPSTREAM__REFRESH__NEGATIVE_TTL=-1s")); err != nil || c.Upstream.Refresh.NegativeTTL >= 0 {
		t.Fatalf("negative_ttl -1s (off): %v, %v", err, c)
	}
	if c, err := Load("", nil); err != nil || c.Upstream.Enabled() {
		t.Fatalf("without token_url: enabled %v, %v", c.Upstream.Enabled(), err)
	}
	for _, tc := range []struct {
		env []string
		key string
	}{
		{[]string{"TOKENGW_UPSTREAM__TOKEN_URL=idp/token"}, "upstream.token_url"},
		{[]string{"TOKENGW_UPSTREAM__TOKEN_URL=https://u:p@idp/token"}, "upstream.token_url"},
		{[]string{"TOKENGW_UPSTREAM__REVOCATION_URL=https://idp/revoke"}, "upstream.revocation_url"},
		{append(ok, "TOKENGW_UPSTREAM__REVOCATION_URL=ftp://idp/revoke"), "upstream.revocation_url"},
		{append(ok, "TOKENGW_UPSTREAM__TIMEOUT=0s"), "upstream.timeout"},
		{append(ok, "TOKENGW_UPSTREAM__EXPIRY_MARGIN=-1s"), "upstream.expiry_margin"},
		{append(ok, "TOKENGW_UPSTREAM__REFRESH__REPLAY_WINDOW=61s"), "upstream.refresh.replay_window"},
		{append(ok, "TOKENGW_UPSTREAM__REFRESH__MAX_REPLAYS=-1"), "upstream.refresh.max_replays"},
		{append(ok, "TOKENGW_UPSTREAM__REFRESH__NEGATIVE_TTL=6s"), "upstream.refresh.negative_ttl"},
		{append(ok, "TOKENGW_UPSTREAM__TLS__CA_FILE=/nonexistent/ca.pem"), "upstream.tls.ca_file"},
		{append(ok, "TOKENGW_UPSTREAM__TLS__CERT_FILE=/etc/hostname"), "upstream.tls.cert_file"},
	} {
		_, err := Load("", tc.env)
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("%v: err %v, want one naming %s", tc.env, err, tc.key)
		}
	}
	if _, err := Load("", append(ok, "TOKENGW_UPSTREAM__NOPE=1")); err == nil {
		t.Error("an unknown upstream key was accepted")
	}
}
