package reuse

import "strconv"

// subjectKey is the reuse key of a request for a subject (the jwt-bearer
// grant): the key of the same request without a subject, then the subject,
// length-prefixed (a subject may hold any character; audiences hold no
// NUL, so the suffix cannot be mistaken for part of one).
func subjectKey(req Request) string {
	sub := req.Subject
	req.Subject = ""
	return ReuseKey(req) + "\x00sub:" + strconv.Itoa(len(sub)) + ":" + sub
}
