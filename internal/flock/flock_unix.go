//go:build unix

// Package flock takes advisory locks on open files without waiting: the
// kernel cache (one import per bundle) and the output directories (a live
// build's temporary directory against a dead one's) both use it.
package flock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// TryLock takes f's exclusive lock without waiting; false when another
// process holds it.
func TryLock(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// Unlock releases f's lock (closing f releases it too).
func Unlock(f *os.File) {
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
