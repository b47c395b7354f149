package rootfs

import (
	"errors"
	"io/fs"
	"sort"
)

// Overlay is a stage's root: what COPY wrote (Upper) over its base (Lower).
// An upper entry hides the lower entry at the same path; a non-directory in
// Upper hides everything below that path in Lower.
type Overlay struct {
	Upper *Tree
	Lower FS
}

// Lstat implements FS.
func (o Overlay) Lstat(p string) (*Entry, error) {
	p = Clean(p)
	if e, err := o.Upper.Lstat(p); err == nil && (p != "/" || o.Lower == nil) {
		return e, nil
	}
	if o.Lower == nil || o.hiddenByUpper(p) {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: ErrNotExist}
	}
	return o.Lower.Lstat(p)
}

// hiddenByUpper says whether a parent of p is a non-directory in Upper.
func (o Overlay) hiddenByUpper(p string) bool {
	for d := parent(p); d != "/"; d = parent(d) {
		if e, err := o.Upper.Lstat(d); err == nil && !e.IsDir() {
			return true
		}
	}
	return false
}

// ReadDir implements FS.
func (o Overlay) ReadDir(dir string) ([]*Entry, error) {
	byPath := map[string]*Entry{}
	var errs []error
	if o.Lower != nil && !o.hiddenByUpper(Clean(dir)) {
		if le, err := o.Lower.Lstat(dir); err == nil && le.IsDir() {
			lower, err := o.Lower.ReadDir(dir)
			errs = append(errs, err)
			for _, e := range lower {
				byPath[e.Path] = e
			}
		}
	}
	upper, uerr := o.Upper.ReadDir(dir)
	for _, e := range upper {
		byPath[e.Path] = e
	}
	if uerr != nil && len(byPath) == 0 {
		if _, err := o.Lstat(dir); err != nil {
			return nil, err
		}
	}
	out := make([]*Entry, 0, len(byPath))
	for _, e := range byPath {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, errors.Join(errs...)
}

func parent(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
