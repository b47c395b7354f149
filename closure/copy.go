package closure

import (
	"context"
	"fmt"
	"path"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Copy copies paths of fsys into dst with the links that lead to each and
// their parents' metadata. A path that is a directory is copied whole:
// everything below it, links as links with their targets (a link to a
// directory brings that directory, not its contents). A dangling link
// inside a directory is kept as it is. A directory is resolved once and
// walked by the real paths of its entries, so a copy costs the size of the
// subtree whatever its depth; a tree deeper than rootfs.MaxDepth is an
// error naming the path. ctx being done stops the copy.
func Copy(ctx context.Context, dst *rootfs.Tree, fsys rootfs.FS, paths []string) error {
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, links, err := rootfs.Resolve(fsys, p)
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if err := dst.CopyResolved(fsys, e, links); err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if e.IsDir() {
			if err := copyDir(ctx, dst, fsys, e.Path); err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
		}
	}
	return nil
}

// copyDir copies everything below the real directory dir.
func copyDir(ctx context.Context, dst *rootfs.Tree, fsys rootfs.FS, dir string) error {
	return rootfs.WalkDir(ctx, fsys, dir, func(e *rootfs.Entry, _ string) error {
		if e.IsSymlink() {
			if err := dst.Add(*e); err != nil {
				return err
			}
			// The link's target, resolved from the link's own directory.
			target, links, err := rootfs.ResolveAt(fsys, path.Dir(e.Path), e.Link)
			if err != nil {
				return nil // dangling (or a loop): the link alone, as it is
			}
			return dst.CopyResolved(fsys, target, links)
		}
		if old, ok := dst.Get(e.Path); ok && old.IsDir() && e.IsDir() {
			return nil
		}
		return dst.Add(*e)
	})
}

// Tree returns a new tree holding the closure: Paths copied from fsys,
// then the Generated files.
func (res *Result) Tree(ctx context.Context, fsys rootfs.FS) (*rootfs.Tree, error) {
	t := rootfs.NewTree()
	if err := Copy(ctx, t, fsys, res.Paths); err != nil {
		return nil, err
	}
	for _, g := range res.Generated {
		if err := t.Add(g); err != nil {
			return nil, fmt.Errorf("adding %s: %w", g.Path, err)
		}
	}
	return t, nil
}
