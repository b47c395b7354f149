package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// HostFS is a directory of the build machine seen as a root filesystem:
// "/" of the FS is Root on the host. It reads metadata on demand, so
// `FROM host` costs only what the closure touches. Symlinks are resolved by
// Resolve inside Root, never by the host kernel, so nothing leads outside.
type HostFS struct {
	Root string // "/" for the host's own root
	// Origin, when its Kind is set, is the origin of every entry instead
	// of OriginHost with the entry's host path: for a directory that
	// stands for something else, such as a stage's root that BuildKit
	// mounts into the assembler (WithOrigin).
	Origin Origin
}

// WithOrigin is h with every entry's origin o.
func (h HostFS) WithOrigin(o Origin) HostFS {
	h.Origin = o
	return h
}

// Lstat implements FS.
func (h HostFS) Lstat(p string) (*Entry, error) {
	hp := filepath.Join(h.Root, filepath.FromSlash(Clean(p)))
	fi, err := os.Lstat(hp)
	if err != nil {
		return nil, err
	}
	e, err := EntryFromFileInfo(Clean(p), hp, fi)
	if err != nil {
		return nil, err
	}
	if h.Origin.Kind != "" {
		e.Origin = h.Origin
	}
	return e, nil
}

// ReadDir implements FS.
func (h HostFS) ReadDir(dir string) ([]*Entry, error) {
	dir = Clean(dir)
	des, err := os.ReadDir(filepath.Join(h.Root, filepath.FromSlash(dir)))
	if err != nil {
		return nil, err
	}
	out := make([]*Entry, 0, len(des))
	for _, de := range des {
		e, err := h.Lstat(dir + "/" + de.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// EntryFromFileInfo describes the host file hostPath, stored in a tree at p,
// with hostPath as its origin.
func EntryFromFileInfo(p, hostPath string, fi fs.FileInfo) (*Entry, error) {
	e := &Entry{Path: Clean(p), Mode: fi.Mode(), Origin: Origin{Kind: OriginHost, Path: hostPath}}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = st.Uid, st.Gid
		e.Rdev = uint64(st.Rdev)
	}
	switch {
	case fi.Mode().IsRegular():
		e.HostPath = hostPath
		e.Size = fi.Size()
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(hostPath)
		if err != nil {
			return nil, err
		}
		e.Link = target
	}
	return e, nil
}

// AddHostDir adds everything below the host directory dir to t at the tree
// path at, keeping modes and owners, links as links.
func (t *Tree) AddHostDir(dir, at string) error {
	return filepath.WalkDir(dir, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, hp)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, err := EntryFromFileInfo(Clean(at+"/"+filepath.ToSlash(rel)), hp, fi)
		if err != nil {
			return err
		}
		if !e.IsDir() && !e.IsRegular() && !e.IsSymlink() {
			return fmt.Errorf("%s: unsupported file type %s", hp, fi.Mode().Type())
		}
		return t.Add(*e)
	})
}
