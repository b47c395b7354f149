// Package rootfs materialises the root filesystem a unikernel is cut from:
// from image layers, from the build host, or from nothing (scratch).
//
// A Tree is an in-memory description of a filesystem: paths, modes, owners,
// link targets, and for each regular file where its bytes live (a file on the
// build machine, or a few bytes held inline). Nothing is ever extracted with
// the build user's ownership or written outside a temporary content store, so
// building needs no root and no mount.
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
	"strings"
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
}

// NewTree returns a tree that holds only the root directory.
func NewTree() *Tree {
	t := &Tree{entries: map[string]*Entry{}}
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
// with a non-directory removes them, as an image layer does.
func (t *Tree) Add(e Entry) error {
	e.Path = Clean(e.Path)
	if e.Path == "/" && !e.IsDir() {
		return errors.New("the root must be a directory")
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
	t.entries[e.Path] = &e
	return nil
}

func (t *Tree) mkdirParents(p string) error {
	dir := path.Dir(p)
	if dir == p {
		return nil
	}
	if e, ok := t.entries[dir]; ok {
		if !e.IsDir() {
			return fmt.Errorf("%s: parent %s is not a directory", p, dir)
		}
		return nil
	}
	if err := t.mkdirParents(dir); err != nil {
		return err
	}
	t.entries[dir] = &Entry{Path: dir, Mode: fs.ModeDir | 0o755}
	return nil
}

// Remove deletes p and, for a directory, everything below it.
func (t *Tree) Remove(p string) {
	p = Clean(p)
	if p == "/" {
		for k := range t.entries {
			if k != "/" {
				delete(t.entries, k)
			}
		}
		return
	}
	delete(t.entries, p)
	prefix := p + "/"
	for k := range t.entries {
		if strings.HasPrefix(k, prefix) {
			delete(t.entries, k)
		}
	}
}

// Children returns the entries directly below dir, sorted by name.
func (t *Tree) Children(dir string) []*Entry {
	dir = Clean(dir)
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	var out []*Entry
	for k, e := range t.entries {
		if k != "/" && strings.HasPrefix(k, prefix) && !strings.Contains(k[len(prefix):], "/") {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Walk calls fn for every entry, parents before children, in a fixed order
// (byte order of the paths), so that everything derived from a Tree is
// reproducible.
func (t *Tree) Walk(fn func(e *Entry) error) error {
	keys := make([]string, 0, len(t.entries))
	for k := range t.entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return pathLess(keys[i], keys[j]) })
	for _, k := range keys {
		if err := fn(t.entries[k]); err != nil {
			return err
		}
	}
	return nil
}

// pathLess orders paths component by component, so "/a/b" comes before "/a.b"
// and every directory comes right before its own children.
func pathLess(a, b string) bool {
	return strings.ReplaceAll(a, "/", "\x00") < strings.ReplaceAll(b, "/", "\x00")
}

// Lstat returns the entry at p without following a final symlink; the
// parents must be real directories of the tree (use Resolve to follow links).
func (t *Tree) Lstat(p string) (*Entry, error) {
	if e, ok := t.entries[Clean(p)]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("%s: %w", p, ErrNotExist)
}

// ReadDir returns the entries directly below dir, sorted by name.
func (t *Tree) ReadDir(dir string) ([]*Entry, error) {
	e, err := t.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
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
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		dirs = append(dirs, d)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, ok := t.entries[dirs[i]]; ok {
			continue
		}
		if se, err := src.Lstat(dirs[i]); err == nil && se.IsDir() {
			if err := t.Add(*se); err != nil {
				return err
			}
		}
	}
	return nil
}
