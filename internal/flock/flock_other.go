//go:build !unix

// Package flock takes advisory locks on open files without waiting.
// Without flock every lock is granted: callers stay correct because their
// final step is an atomic rename (the first one wins).
package flock

import "os"

// TryLock grants every lock where there is no flock.
func TryLock(f *os.File) (bool, error) { return true, nil }

// Unlock does nothing where there is no flock.
func Unlock(f *os.File) {}
