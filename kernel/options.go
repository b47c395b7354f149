package kernel

import (
	"context"
	"errors"
	"fmt"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
)

// Option adjusts Import, Resolve and List.
type Option func(*config)

// Fetcher gets the bundle that ref names (an OCI reference) from a registry
// and writes its files (bundle.json, kernel, modules/…, boot/…) into dir,
// an empty directory. It returns an error wrapping ErrNotFound when the
// registry has no such bundle. Resolve verifies what it wrote before
// adding it to the cache. This is the seam for registry resolution.
type Fetcher func(ctx context.Context, ref, dir string) error

// ErrNotFound is returned (wrapped) when a name resolves to no bundle.
var ErrNotFound = errors.New("kernel bundle not found")

type config struct {
	cacheDir   string // holds one directory per bundle, named by digest hex
	name       string // alias to record for the imported bundle
	fetch      Fetcher
	noDistro   bool
	grubLibDir string
}

// WithCacheDir keeps bundles in dir instead of the kernels directory of cachedir.Dir().
func WithCacheDir(dir string) Option {
	return func(c *config) { c.cacheDir = dir }
}

// WithName records name as an alias of the imported bundle, so that
// Resolve(name) finds it. Resolve records DefaultName for the distro kernel.
func WithName(name string) Option {
	return func(c *config) { c.name = name }
}

// WithFetcher lets Resolve ask a registry after the cache misses.
func WithFetcher(f Fetcher) Option {
	return func(c *config) { c.fetch = f }
}

// WithoutDistro stops Resolve from importing the distribution's kernel
// when the cache (and registry) have no default bundle.
func WithoutDistro() Option {
	return func(c *config) { c.noDistro = true }
}

// WithGrubLibDir takes the GRUB platform directories (i386-pc/,
// x86_64-efi/) from dir instead of /usr/lib/grub.
func WithGrubLibDir(dir string) Option {
	return func(c *config) { c.grubLibDir = dir }
}

func newConfig(opts []Option) (*config, error) {
	c := &config{grubLibDir: "/usr/lib/grub"}
	for _, o := range opts {
		o(c)
	}
	if c.cacheDir == "" {
		dir, err := cachedir.Sub("", cachedir.Kernels)
		if err != nil {
			return nil, fmt.Errorf("kernel cache: %w", err)
		}
		c.cacheDir = dir
	}
	if c.name != "" {
		if err := checkAlias(c.name); err != nil {
			return nil, err
		}
	}
	return c, nil
}
