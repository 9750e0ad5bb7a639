//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bolt

import (
	"os"
	"syscall"
)

// unlockFile lets go of bbolt's flock on f. Closing f is not enough after
// an open that panicked: the memory mapping bbolt made of f is left behind
// and holds the open file, and with it the lock, until the process ends.
func unlockFile(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
