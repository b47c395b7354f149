package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/flock"
)

// lockDir holds one lock file per bundle name being made. Locks are
// flock(2) locks: the kernel drops them when their process dies, so a
// killed uni never leaves the cache locked.
const lockDir = "locks"

// workPrefix starts the names of the cache's temporary work directories
// (downloads, imports, fetches): each is locked by its maker while in use.
const workPrefix = ".work-"

// lockPoll is how often a waiter retries a held lock (and checks its ctx).
const lockPoll = 50 * time.Millisecond

// legacyWorkPrefixes start the work directories of earlier versions of
// uni, which did not lock them; they are removed once legacyStaleAge old.
var legacyWorkPrefixes = []string{".apt-", ".import-", ".fetch-"}

const legacyStaleAge = time.Hour

// staleAge is how old an unlocked work directory must be before another
// uni removes it: older than the moment between its creation and locking.
const staleAge = time.Minute

// lockName makes this process the one that makes the bundle name resolves
// to, waiting (and saying so) while another holds it. The caller looks in
// the cache again once it holds the lock: the other may have made it.
func lockName(ctx context.Context, cfg *config, name string) (unlock func(), err error) {
	dir := filepath.Join(cfg.cacheDir, lockDir)
	if err := cachedir.MkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName(name)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	waited := false
	for {
		ok, err := flock.TryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("kernel cache: locking %s: %w", f.Name(), err)
		}
		if ok {
			return func() { flock.Unlock(f); f.Close() }, nil
		}
		if !waited {
			cfg.progress.Printf("waiting for another uni that is making kernel bundle %s", name)
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for kernel bundle %s: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// lockFileName is name made safe as a file name: path-escaped, or its
// SHA256 when that is too long (a long registry reference).
func lockFileName(name string) string {
	if esc := url.PathEscape(name); len(esc) <= 200 && !strings.HasPrefix(esc, ".") {
		return esc
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256-" + hex.EncodeToString(sum[:])
}

// workDir makes a temporary directory in the cache, locked while this
// process uses it; done removes it. Stale ones, whose process died
// without removing them, are swept first.
func workDir(cfg *config) (dir string, done func(), err error) {
	sweepStale(cfg)
	dir, err = os.MkdirTemp(cfg.cacheDir, workPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("kernel cache: %w", err)
	}
	f, err := os.Open(dir)
	if err == nil {
		var ok bool
		if ok, err = flock.TryLock(f); err == nil && !ok {
			err = errors.New("locked by another process")
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("kernel cache: locking %s: %w", dir, err)
	}
	return dir, func() {
		os.RemoveAll(dir)
		flock.Unlock(f)
		f.Close()
	}, nil
}

// sweepStale removes the work directories of processes that died in the
// middle (killed, power lost): those nobody holds a lock on.
func sweepStale(cfg *config) {
	entries, err := os.ReadDir(cfg.cacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(cfg.cacheDir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if isLegacyWorkDir(e.Name()) && time.Since(fi.ModTime()) > legacyStaleAge {
			os.RemoveAll(p)
			continue
		}
		if !strings.HasPrefix(e.Name(), workPrefix) || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if ok, err := flock.TryLock(f); err == nil && ok {
			os.RemoveAll(p)
			flock.Unlock(f)
		}
		f.Close()
	}
}

func isLegacyWorkDir(name string) bool {
	for _, p := range legacyWorkPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
