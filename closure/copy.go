package closure

import (
	"fmt"
	"path"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Copy copies paths of fsys into dst with the links that lead to each and
// their parents' metadata. A path that is a directory is copied whole:
// everything below it, links as links with their targets (a link to a
// directory brings that directory, not its contents). A dangling link
// inside a directory is kept as it is.
func Copy(dst *rootfs.Tree, fsys rootfs.FS, paths []string) error {
	for _, p := range paths {
		if err := dst.CopyFrom(fsys, p); err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		e, _, err := rootfs.Resolve(fsys, p)
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if e.IsDir() {
			if err := copyDir(dst, fsys, e.Path); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyDir(dst *rootfs.Tree, fsys rootfs.FS, dir string) error {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("copying %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsSymlink() {
			if _, _, err := rootfs.Resolve(fsys, e.Path); err != nil {
				if err := dst.Add(*e); err != nil {
					return fmt.Errorf("copying %s: %w", e.Path, err)
				}
				continue
			}
		}
		if err := dst.CopyFrom(fsys, e.Path); err != nil {
			return fmt.Errorf("copying %s: %w", e.Path, err)
		}
		if e.IsDir() {
			if err := copyDir(dst, fsys, path.Join(dir, path.Base(e.Path))); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tree returns a new tree holding the closure: Paths copied from fsys,
// then the Generated files.
func (res *Result) Tree(fsys rootfs.FS) (*rootfs.Tree, error) {
	t := rootfs.NewTree()
	if err := Copy(t, fsys, res.Paths); err != nil {
		return nil, err
	}
	for _, g := range res.Generated {
		if err := t.Add(g); err != nil {
			return nil, fmt.Errorf("adding %s: %w", g.Path, err)
		}
	}
	return t, nil
}
