package assertion

import (
	"testing"
	"time"
)

// FuzzCacheControl: whatever a jwks_uri's Cache-Control says, the time a
// key set is used lies within [MinRefresh, MaxAge].
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=600", "public, max-age=999999999999999999999", "no-store", `max-age="30"`, "max-age=-1, max-age=5", ""} {
		f.Add(s)
	}
	r := &Remote{opts: RemoteOptions{MinRefresh: time.Minute, MaxAge: time.Hour}}
	f.Fuzz(func(t *testing.T, cc string) {
		d := r.maxAge([]string{cc})
		if d < time.Minute || d > time.Hour {
			t.Fatalf("maxAge(%q) = %v, outside [1m, 1h]", cc, d)
		}
	})
}
