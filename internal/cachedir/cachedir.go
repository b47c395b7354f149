// Package cachedir is the one place that says where uni keeps its caches:
// $UNI_CACHE_DIR, else the user's cache directory + "/uni". Every cache
// (kernel bundles, image layers, downloads) is a subdirectory of it.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Env names the variable that moves every cache.
const Env = "UNI_CACHE_DIR"

// Subdirectories of the cache.
const (
	Kernels = "kernels" // kernel bundles, one directory per digest
	Layers  = "layers"  // validated base-image layers and file bodies
)

// Dir returns the cache's root (not created).
func Dir() (string, error) {
	if d := os.Getenv(Env); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w (set %s)", err, Env)
	}
	return filepath.Join(d, "uni"), nil
}

// Sub returns root/name for a cache root given by the caller, or under
// Dir() when root is "".
func Sub(root, name string) (string, error) {
	if root == "" {
		var err error
		if root, err = Dir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(root, name), nil
}

// MkdirPrivate creates dir and its missing parents owned by this user with
// mode 0700, and refuses an existing one that others may write to: a cache
// that another user can plant files in could feed a build their kernel.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("cache directory %s is writable by others (mode %v): fix it with chmod go-w", dir, fi.Mode().Perm())
	}
	return checkOwner(dir, fi)
}
