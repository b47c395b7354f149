package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
)

// Resolve finds the bundle that name means: DefaultName ("linux", also for
// ""), another alias, a digest ("sha256:<hex>", or 12+ hex digits), or a
// local path (a directory or a .deb, imported). A name not in the cache is
// asked of the registry when WithFetcher is given; the default name, last,
// is imported from the host distribution's cloud kernel package
// (Debian-family hosts, through apt-get download). The fetcher is asked
// with the name as given, so it maps DefaultName to its default reference.
func Resolve(ctx context.Context, name string, opts ...Option) (*Bundle, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = DefaultName
	}
	if _, err := os.Stat(name); err == nil && (isExplicitPath(name) || strings.ContainsRune(name, '/')) {
		return Import(ctx, name, opts...)
	}
	if isExplicitPath(name) {
		return nil, fmt.Errorf("kernel %s: no such file or directory: %w", name, ErrNotFound)
	}
	if b, err := lookupAlias(cfg, name); !errors.Is(err, ErrNotFound) {
		return b, err
	}
	if b, err := lookupDigest(cfg, name); !errors.Is(err, ErrNotFound) {
		return b, err
	}
	var fetchErr error
	if cfg.fetch != nil {
		b, err := fetchBundle(ctx, cfg, name)
		if !errors.Is(err, ErrNotFound) {
			return b, err
		}
		if err != ErrNotFound {
			fetchErr = err
		}
	}
	if cfg.build != nil {
		// ErrNotFound itself: a name the builder does not make.
		if b, err := cfg.build(ctx, name, WithCacheDir(cfg.cacheDir)); err != ErrNotFound {
			return b, err
		}
	}
	if name == DefaultName && !cfg.noDistro {
		return importDistro(ctx, cfg)
	}
	if fetchErr != nil {
		// The registry's answer says more than "not in the cache".
		return nil, fmt.Errorf("kernel bundle %q: not in the cache %s, nor in the registry: %w", name, cfg.cacheDir, fetchErr)
	}
	return nil, fmt.Errorf("kernel bundle %q: not in the cache %s: %w", name, cfg.cacheDir, ErrNotFound)
}

// isExplicitPath tells a path that cannot be a name. OCI references have
// a '/' too, so a relative "dir/sub" is a path only if it exists.
func isExplicitPath(name string) bool {
	return filepath.IsAbs(name) || strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../") ||
		name == "." || name == ".." || strings.HasSuffix(name, ".deb")
}

// fetchBundle asks the registry for ref, checks what it wrote against its
// digest, and adds it to the cache under ref. One process at a time
// fetches a given ref; a waiter finds the bundle when its turn comes.
func fetchBundle(ctx context.Context, cfg *config, ref string) (*Bundle, error) {
	if err := cfg.prepare(); err != nil {
		return nil, err
	}
	unlock, err := lockName(ctx, cfg, ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if b, err := lookupAlias(cfg, ref); !errors.Is(err, ErrNotFound) {
		return b, err
	}
	work, done, err := workDir(cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	stage := filepath.Join(work, "bundle")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return nil, err
	}
	if err := cfg.fetch(ctx, ref, stage); errors.Is(err, ErrNotFound) {
		return nil, err // Resolve names ref
	} else if err != nil {
		return nil, fmt.Errorf("kernel bundle %s: %w", ref, err)
	}
	fetched, err := Open(stage)
	if err != nil {
		return nil, fmt.Errorf("kernel bundle %s from the registry: %w", ref, err)
	}
	if err := fetched.Verify(); err != nil {
		return nil, fmt.Errorf("kernel bundle %s from the registry: %w", ref, err)
	}
	b, err := install(ctx, cfg, stage, fetched.Desc)
	if err != nil {
		return nil, err
	}
	if checkAlias(ref) == nil {
		if err := setAlias(cfg, ref, b.Desc.Digest); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// importDistro downloads the host distribution's cloud kernel package,
// checks it against apt's index, and imports it as the default bundle.
// One process at a time does it; the others wait and then find it.
func importDistro(ctx context.Context, cfg *config) (*Bundle, error) {
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		return nil, fmt.Errorf("no kernel bundle %q in %s, and this host is not Debian-family so none can be made from its packages: import one (a kernel .deb, or a directory with vmlinuz and lib/modules): %w",
			DefaultName, cfg.cacheDir, ErrNotFound)
	}
	if err := cfg.prepare(); err != nil {
		return nil, err
	}
	unlock, err := lockName(ctx, cfg, DefaultName)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if b, err := lookupAlias(cfg, DefaultName); !errors.Is(err, ErrNotFound) {
		return b, err
	}
	pkg, err := cfg.locate(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding the distribution's kernel package: %w", err)
	}
	// A fresh directory of ours: nothing found lying in the cache is ever
	// imported, only the bytes just downloaded and checked.
	work, done, err := workDir(cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	debPath, err := distro.Download(ctx, pkg, work, cfg.progress)
	if err != nil {
		return nil, err
	}
	named := *cfg
	named.name = DefaultName
	return importSource(ctx, &named, debPath)
}
