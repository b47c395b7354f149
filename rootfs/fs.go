package rootfs

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// FS is a read-only view of a filesystem that a unikernel's root is cut
// from: a Tree held in memory, or the build host's own root (HostFS).
// Paths are absolute and taken relative to the FS's own root.
type FS interface {
	// Lstat returns the entry at p, not following a final symlink. The
	// parents of p must be directories, not links.
	Lstat(p string) (*Entry, error)
	// ReadDir returns the entries directly below dir, sorted by name.
	ReadDir(dir string) ([]*Entry, error)
}

// ErrNotExist is returned (wrapped) when a path does not resolve to an entry.
var ErrNotExist = fs.ErrNotExist

// maxLinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxLinkHops = 40

// Resolve follows symlinks in every component of p as the guest kernel
// would, with the FS's "/" as the root: a link can never lead outside it,
// since ".." at the root stays at the root. It returns the final entry
// (whose Path is the real path, free of links) and the link entries passed
// through, so that a copy of the file can keep the links that lead to it.
func Resolve(fsys FS, p string) (*Entry, []*Entry, error) {
	var links []*Entry
	hops := 0
	cur := "/"
	rest := strings.Split(strings.Trim(Clean(p), "/"), "/")
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, name)
		e, err := fsys.Lstat(next)
		if err != nil {
			return nil, links, fmt.Errorf("%s: %w", p, ErrNotExist)
		}
		if e.IsSymlink() {
			hops++
			if hops > maxLinkHops {
				return nil, links, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			links = append(links, e)
			if strings.HasPrefix(e.Link, "/") {
				cur = "/"
			}
			rest = append(strings.Split(strings.Trim(e.Link, "/"), "/"), rest...)
			continue
		}
		if len(rest) > 0 && !e.IsDir() {
			return nil, links, fmt.Errorf("%s: %s is not a directory", p, next)
		}
		cur = next
	}
	e, err := fsys.Lstat(cur)
	if err != nil {
		return nil, links, err
	}
	return e, links, nil
}
