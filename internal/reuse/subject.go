package reuse

import "strconv"

// subjectKey is the reuse key of a request for a subject (the jwt-bearer
// grant): scope, fingerprint, then the subject and the audience, each
// length-prefixed, since a subject may hold any character.
func subjectKey(req Request) string {
	return req.Scope + "\x00" + req.Fingerprint + "\x00" +
		strconv.Itoa(len(req.Subject)) + ":" + req.Subject + "\x00" +
		strconv.Itoa(len(req.Audience)) + ":" + req.Audience
}
