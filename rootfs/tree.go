// Package rootfs is the model of the root filesystem a unikernel is cut
// from: a Tree held in memory, the build host seen as a root (HostFS), a
// stage's root as COPY writes over its base (Overlay), symlink resolution
// that never leaves the root (Resolve), and the reader that turns an image
// layer's tar stream into entries, whiteouts applied (ReadLayer,
// ApplyLayer). Pulling images from a registry lives in package baseimage,
// so that the writers of the image layout (squashfs, initrd) link none of it.
//
// A Tree is an in-memory description of a filesystem: paths, modes, owners,
// link targets, and for each regular file where its bytes live (a file on the
// build machine, or a few bytes held inline). Nothing is ever extracted with
// the build user's ownership or written outside a temporary content store, so
// building needs no root and no mount. Every name that enters a Tree is
// checked (CheckPath), so no writer ever sees one the guest kernel could not
// use.
package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
)

// Entry is one file, directory or link of a Tree.
type Entry struct {
	Path     string      // clean absolute path, "/" for the root
	Mode     fs.FileMode // type bits and permission bits (setuid, setgid, sticky included)
	UID, GID uint32
	Size     int64  // regular files only
	Link     string // symlink target, verbatim
	HostPath string // regular files: where the bytes live on the build machine
	Data     []byte // regular files: the bytes themselves, when HostPath is empty
	Rdev     uint64 // device number, for character and block devices
	Origin   Origin // where the entry came from (metadata only, for the SBOM)
}

// IsDir, IsRegular and IsSymlink say what kind of entry e is.
func (e *Entry) IsDir() bool     { return e.Mode.IsDir() }
func (e *Entry) IsRegular() bool { return e.Mode.IsRegular() }
func (e *Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }

// Open returns the content of a regular file.
func (e *Entry) Open() (io.ReadCloser, error) {
	if !e.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", e.Path)
	}
	if e.HostPath == "" {
		return io.NopCloser(bytes.NewReader(e.Data)), nil
	}
	return os.Open(e.HostPath)
}

// Tree is a filesystem held as metadata. The zero value is not usable; call NewTree.
type Tree struct {
	entries map[string]*Entry
	// kids indexes each directory's children by name, so that listing a
	// directory or removing a subtree costs what it holds, not the size of
	// the whole tree.
	kids map[string]map[string]struct{}
}

// NewTree returns a tree that holds only the root directory.
func NewTree() *Tree {
	t := &Tree{entries: map[string]*Entry{}, kids: map[string]map[string]struct{}{}}
	t.entries["/"] = &Entry{Path: "/", Mode: fs.ModeDir | 0o755}
	return t
}

// Clean turns p into the canonical absolute form used as a Tree key.
// It never climbs above "/": "../../etc" becomes "/etc".
func Clean(p string) string {
	return path.Clean("/" + p)
}

// Get returns the entry stored at p, without following links.
func (t *Tree) Get(p string) (*Entry, bool) {
	e, ok := t.entries[Clean(p)]
	return e, ok
}

// Len returns the number of entries, the root included.
func (t *Tree) Len() int { return len(t.entries) }

// Add stores e, creating missing parent directories (0755, root-owned) and
// replacing whatever stood at the same path. A directory replacing a
// directory keeps the old one's children; anything replacing a directory
// with a non-directory removes them, as an image layer does. A path or
// link target that CheckPath or CheckLink refuses is an error.
func (t *Tree) Add(e Entry) error {
	e.Path = Clean(e.Path)
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	if e.Path == "/" && !e.IsDir() {
		return errors.New("the root must be a directory")
	}
	if e.IsSymlink() {
		if err := CheckLink(e.Path, e.Link); err != nil {
			return err
		}
	}
	if e.IsRegular() && e.HostPath == "" {
		e.Size = int64(len(e.Data))
	}
	if err := t.mkdirParents(e.Path); err != nil {
		return err
	}
	if old, ok := t.entries[e.Path]; ok && old.IsDir() && !e.IsDir() {
		t.Remove(e.Path)
	}
	t.put(&e)
	return nil
}

// put stores e and links it into its parent's index; the parent exists.
func (t *Tree) put(e *Entry) {
	t.entries[e.Path] = e
	if e.Path == "/" {
		return
	}
	dir, name := split(e.Path)
	k := t.kids[dir]
	if k == nil {
		k = map[string]struct{}{}
		t.kids[dir] = k
	}
	k[name] = struct{}{}
}

// split cuts a clean absolute path other than "/" into its parent and name.
func split(p string) (dir, name string) {
	dir, name = path.Split(p)
	if dir != "/" {
		dir = dir[:len(dir)-1]
	}
	return dir, name
}

func (t *Tree) mkdirParents(p string) error {
	if p == "/" {
		return nil
	}
	dir, _ := split(p)
	if e, ok := t.entries[dir]; ok {
		if !e.IsDir() {
			return fmt.Errorf("%s: parent %s is not a directory", p, dir)
		}
		return nil
	}
	if err := t.mkdirParents(dir); err != nil {
		return err
	}
	t.put(&Entry{Path: dir, Mode: fs.ModeDir | 0o755})
	return nil
}

// Remove deletes p and, for a directory, everything below it.
func (t *Tree) Remove(p string) {
	p = Clean(p)
	if _, ok := t.entries[p]; !ok {
		return
	}
	t.removeBelow(p)
	if p == "/" {
		return
	}
	delete(t.entries, p)
	dir, name := split(p)
	delete(t.kids[dir], name)
}

// removeBelow deletes everything strictly below dir.
func (t *Tree) removeBelow(dir string) {
	for name := range t.kids[dir] {
		c := join(dir, name)
		t.removeBelow(c)
		delete(t.entries, c)
	}
	delete(t.kids, dir)
}

// join is path.Join for a clean directory and a single name.
func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// names returns the names directly below dir, in byte order.
func (t *Tree) names(dir string) []string {
	k := t.kids[dir]
	out := make([]string, 0, len(k))
	for name := range k {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Children returns the entries directly below dir, sorted by name.
func (t *Tree) Children(dir string) []*Entry {
	dir = Clean(dir)
	names := t.names(dir)
	out := make([]*Entry, len(names))
	for i, name := range names {
		out[i] = t.entries[join(dir, name)]
	}
	return out
}

// Walk calls fn for every entry, parents before children, in a fixed order
// (byte order of the paths taken component by component, so "/a/b" comes
// before "/a.b" and every directory right before its own children), so
// that everything derived from a Tree is reproducible.
func (t *Tree) Walk(fn func(e *Entry) error) error {
	var walk func(p string) error
	walk = func(p string) error {
		if err := fn(t.entries[p]); err != nil {
			return err
		}
		for _, name := range t.names(p) {
			if err := walk(join(p, name)); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("/")
}

// Lstat returns the entry at p without following a final symlink; the
// parents must be real directories of the tree (use Resolve to follow links).
func (t *Tree) Lstat(p string) (*Entry, error) {
	if e, ok := t.entries[Clean(p)]; ok {
		return e, nil
	}
	return nil, &fs.PathError{Op: "lstat", Path: p, Err: ErrNotExist}
}

// ReadDir returns the entries directly below dir, sorted by name.
func (t *Tree) ReadDir(dir string) ([]*Entry, error) {
	e, err := t.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: ErrNotDir}
	}
	return t.Children(dir), nil
}

// CopyFrom copies the entry at p of src into t, with the symlinks that lead
// to it and its parent directories' metadata, so that p resolves in t as in
// src. A directory is copied without its contents.
func (t *Tree) CopyFrom(src FS, p string) error {
	e, links, err := Resolve(src, p)
	if err != nil {
		return err
	}
	return t.CopyResolved(src, e, links)
}

// CopyResolved is CopyFrom for an entry already resolved (by Resolve or
// ResolveAt): it copies the links passed through, then e, each with its
// parents' metadata.
func (t *Tree) CopyResolved(src FS, e *Entry, links []*Entry) error {
	for _, l := range links {
		if err := t.copyParents(src, l.Path); err != nil {
			return err
		}
		if err := t.Add(*l); err != nil {
			return err
		}
	}
	if err := t.copyParents(src, e.Path); err != nil {
		return err
	}
	if old, ok := t.entries[e.Path]; ok && old.IsDir() && e.IsDir() {
		return nil
	}
	return t.Add(*e)
}

// copyParents gives the parents of p in t the metadata they have in src,
// where t does not have them yet.
func (t *Tree) copyParents(src FS, p string) error {
	var dirs []string
	for d := parent(p); d != "/"; d = parent(d) {
		if _, ok := t.entries[d]; ok {
			break
		}
		dirs = append(dirs, d)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if se, err := src.Lstat(dirs[i]); err == nil && se.IsDir() {
			if err := t.Add(*se); err != nil {
				return err
			}
		}
	}
	return nil
}
