package rootfs

import (
	"context"
	"errors"
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

// ErrLoop is wrapped when resolving a path passes through more than
// maxLinkHops symlinks.
var ErrLoop = errors.New("too many levels of symbolic links")

// maxLinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxLinkHops = 40

// Resolve follows symlinks in every component of p as the guest kernel
// would, with the FS's "/" as the root: a link can never lead outside it,
// since ".." at the root stays at the root. It returns the final entry
// (whose Path is the real path, free of links) and the link entries passed
// through, so that a copy of the file can keep the links that lead to it.
func Resolve(fsys FS, p string) (*Entry, []*Entry, error) {
	return ResolveAt(fsys, "/", Clean(p))
}

// ResolveAt is Resolve with a relative p taken from dir, which must be a
// real path (a directory of fsys reached through no link): resolving a
// link's target from the link's own directory then costs the target's
// length, not the depth of the directory.
func ResolveAt(fsys FS, dir, p string) (*Entry, []*Entry, error) {
	var links []*Entry
	hops := 0
	cur := Clean(dir)
	if strings.HasPrefix(p, "/") {
		cur = "/"
	}
	rest := strings.Split(p, "/")
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = parent(cur)
			continue
		}
		next := join(cur, name)
		e, err := fsys.Lstat(next)
		if err != nil {
			return nil, links, fmt.Errorf("%s: %w", p, ErrNotExist)
		}
		if e.IsSymlink() {
			hops++
			if hops > maxLinkHops {
				return nil, links, fmt.Errorf("%s: %w", p, ErrLoop)
			}
			links = append(links, e)
			if strings.HasPrefix(e.Link, "/") {
				cur = "/"
			}
			rest = append(strings.Split(e.Link, "/"), rest...)
			continue
		}
		if !e.IsDir() && hasName(rest) {
			return nil, links, fmt.Errorf("%s: %s is %w", p, next, ErrNotDir)
		}
		cur = next
	}
	e, err := fsys.Lstat(cur)
	if err != nil {
		return nil, links, err
	}
	return e, links, nil
}

// hasName says whether the components left hold anything but "" and ".":
// "file/" and "file/." need file to be a directory, as the kernel says.
func hasName(rest []string) bool {
	for _, c := range rest {
		if c != "" {
			return true
		}
	}
	return false
}

// WalkFunc is called by WalkDir for each entry below the walked directory,
// with its path relative to that directory (slash-separated, no leading
// slash). Returning fs.SkipDir for a directory skips what it holds.
type WalkFunc func(e *Entry, rel string) error

// WalkDir calls fn for everything below the directory dir of fsys (its real
// path: resolve it first), parents before children, each directory's
// entries in name order. Links are not followed. Each directory is read
// once by its real path, so a walk costs the size of the subtree whatever
// its depth. A path more than MaxDepth levels deep stops the walk with an
// error wrapping ErrTooDeep; ctx being done stops it with ctx's error.
func WalkDir(ctx context.Context, fsys FS, dir string, fn WalkFunc) error {
	dir = Clean(dir)
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		kids, err := fsys.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, k := range kids {
			name := path.Base(k.Path)
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			if Depth(k.Path) > MaxDepth {
				return &NameError{Path: k.Path, Reason: fmt.Sprintf("more than %d directory levels deep", MaxDepth), Err: ErrTooDeep}
			}
			err := fn(k, r)
			if err == fs.SkipDir && k.IsDir() {
				continue
			}
			if err != nil {
				return err
			}
			if k.IsDir() {
				if err := walk(k.Path, r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(dir, "")
}
