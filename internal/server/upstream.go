package server

import (
	"net/http"

	"github.com/tokengw/tokengw/internal/upstream"
)

// UpstreamGateway serves upstream mode's token and revocation endpoints
// (package upstream's Gateway) and says what each request came to, so that
// its access line and metrics are those of a local request. Safe for
// concurrent use.
type UpstreamGateway interface {
	ServeToken(w http.ResponseWriter, r *http.Request) upstream.Result
	ServeRevoke(w http.ResponseWriter, r *http.Request) upstream.Result
}

var _ UpstreamGateway = (*upstream.Gateway)(nil)

// upstreamHandler records serve's result in the request's access record.
func upstreamHandler(serve func(http.ResponseWriter, *http.Request) upstream.Result) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info := infoOf(w)
		res := serve(w, r)
		info.clientID, info.grant, info.outcome, info.err = res.ClientID, res.Grant, res.Outcome, res.Err
	}
}
