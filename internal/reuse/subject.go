package reuse

import (
	"strconv"
	"strings"
)

// subjectKey is the reuse key of a request for a subject (the jwt-bearer
// grant): scope, fingerprint, then the subject and the audience, each
// length-prefixed, since a subject may hold any character.
func subjectKey(req Request) string {
	var b strings.Builder
	b.Grow(len(req.Scope) + len(req.Fingerprint) + len(req.Subject) + len(req.Audience) + 16)
	b.WriteString(req.Scope)
	b.WriteByte(0)
	b.WriteString(req.Fingerprint)
	for _, s := range [2]string{req.Subject, req.Audience} {
		b.WriteByte(0)
		var n [20]byte
		b.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}
