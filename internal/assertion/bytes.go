package assertion

import "unsafe"

// bytesOf views s as bytes without copying, for hashing an assertion on
// every request (an 8 KiB copy otherwise). The bytes must not be modified
// or kept: sha256.Sum256 does neither.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
