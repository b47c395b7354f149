//go:build !unix

package kernel

import "os"

// Without flock, concurrent cold builds each make the bundle; install keeps
// the cache consistent (the first rename wins).
func tryLock(f *os.File) (bool, error) { return true, nil }

func unlockFile(f *os.File) {}
