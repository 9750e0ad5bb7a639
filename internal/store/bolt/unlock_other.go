//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bolt

import "os"

// unlockFile does nothing here: bbolt's lock on these systems is not a
// flock, and is left to closing the file.
func unlockFile(*os.File) {}
