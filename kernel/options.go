package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
)

// Option adjusts Import, Resolve and List.
type Option func(*config)

// Fetcher gets the bundle that ref names (an OCI reference) from a registry
// and writes its files (bundle.json, kernel, modules/…, boot/…) into dir,
// an empty directory. It returns ErrNotFound itself for a name it does not
// take (not a reference), and an error wrapping ErrNotFound when the
// registry has no such bundle. Resolve verifies what it wrote before
// adding it to the cache. This is the seam for registry resolution.
type Fetcher func(ctx context.Context, ref, dir string) error

// ErrNotFound is returned (wrapped) when a name resolves to no bundle.
var ErrNotFound = errors.New("kernel bundle not found")

// DownloadError is a failed or interrupted download of the distribution's
// kernel package (see distro.DownloadError): getting the package went
// wrong, not the name the user asked for. errors.As finds it in what
// Resolve returns; errors.Is(err, context.Canceled) tells an interruption.
type DownloadError = distro.DownloadError

// ErrMismatch is returned (wrapped, inside a *DownloadError) when a
// downloaded kernel package is not what apt's signed index says it is.
var ErrMismatch = distro.ErrMismatch

type config struct {
	cacheDir   string // holds one directory per bundle, named by digest hex
	name       string // alias to record for the imported bundle
	fetch      Fetcher
	build      Builder
	noDistro   bool
	grubLibDir string
	progress   *progress.Reporter
	// locate finds the distribution kernel package; tests replace it.
	locate func(ctx context.Context) (distro.Package, error)
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

// WithProgress reports the slow steps of a cold cache (the kernel package's
// download, its unpacking, waiting for another uni doing the same) on w: a
// bar with size, rate and ETA when w is a terminal, plain lines otherwise.
// Without it nothing is reported.
func WithProgress(w io.Writer) Option {
	return func(c *config) { c.progress = progress.New(w) }
}

func newConfig(opts []Option) (*config, error) {
	c := &config{grubLibDir: "/usr/lib/grub", locate: distro.CloudKernel}
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

// prepare creates the cache directory, private to this user, or refuses
// one that others could plant files in. Everything that writes to the
// cache calls it first.
func (c *config) prepare() error {
	if err := cachedir.MkdirPrivate(c.cacheDir); err != nil {
		return fmt.Errorf("kernel cache: %w", err)
	}
	return nil
}
