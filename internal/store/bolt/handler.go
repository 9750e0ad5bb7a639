package bolt

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// BackupHandler serves a consistent copy of st's database file (Backup)
// for `POST /admin/store/backup`, so that `tokengw store backup` can take
// one from a running server, which holds the file's lock. It does no
// authentication: mount it behind the admin API's bearer check.
//
// POST answers 200 with Content-Type application/octet-stream and a
// Content-Length of the whole copy, then the copy. A copy that fails
// part-way ends the response short of its Content-Length, so an HTTP
// client sees an unexpected EOF rather than a whole file. Another method:
// 405 with Allow: POST. A store that is closed: 503 temporarily_unavailable;
// another failure before the first byte: 500 server_error. onError, if
// set, is called with every failure (for the log; the body says nothing
// about it).
func BackupHandler(st *Store, onError func(r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			oauth.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{
				"error": "invalid_request", "error_description": "use POST to take a backup"})
			return
		}
		started := false
		_, err := st.backup(r.Context(), w, func(size int64) {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", strconv.FormatInt(size, 10))
			h.Set("Content-Disposition", `attachment; filename="tokengw.db"`)
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		})
		if err == nil {
			return
		}
		if onError != nil {
			onError(r, err)
		}
		if started {
			return // short of Content-Length: net/http closes the connection
		}
		if errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrUnavailable) {
			w.Header().Set("Retry-After", "1")
			oauth.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": "temporarily_unavailable", "error_description": "the store is not available"})
			return
		}
		oauth.WriteJSON(w, http.StatusInternalServerError, map[string]string{
			"error": "server_error", "error_description": "the backup failed"})
	})
}
