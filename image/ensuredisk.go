package image

import (
	"context"
	"fmt"

	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/layout"
)

// BundleResolver finds the kernel bundle with the given digest (config.json's
// kernel.digest), e.g. in the local cache.
type BundleResolver func(ctx context.Context, digest string) (*kernel.Bundle, error)

// EnsureDisk writes disk.img into a layout that lacks it, from the layout's
// files and its kernel bundle's boot loaders, as `uni build --disk` would
// have. The layout is verified first, so the disk is made only of files
// that match config.json. A layout that has disk.img is left alone.
func EnsureDisk(ctx context.Context, l *layout.Layout, resolve BundleResolver) error {
	if l.HasDisk() {
		return nil
	}
	if !l.Verified() {
		if err := l.Verify(ctx); err != nil {
			return err
		}
	}
	cfg := l.Config()
	b, err := resolve(ctx, cfg.Kernel.Digest)
	if err != nil {
		return fmt.Errorf("%s has no disk.img and its kernel bundle %s is not at hand to make one: %w (rebuild with uni build --disk)", l.Dir(), cfg.Kernel.Digest, err)
	}
	return WriteDisk(ctx, l.Dir(), b, cfg.Cmdline, 0, cfg.Build.SourceDateEpoch)
}
