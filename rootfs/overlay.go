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
// The parents of p that Upper holds are the top ones (a Tree holds the
// parents of what it holds, as directories), so only the deepest of them
// can be a non-directory: a binary search finds it in log(depth) lookups,
// which keeps a walk of a deep tree linear.
func (o Overlay) hiddenByUpper(p string) bool {
	var ends []int // p[:ends[i]] is the parent i+1 levels below "/"
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			ends = append(ends, i)
		}
	}
	lo, hi := 0, len(ends) // Upper holds p[:ends[i]] for every i < lo, none for i >= hi
	for lo < hi {
		mid := (lo + hi) / 2
		if _, ok := o.Upper.entries[p[:ends[mid]]]; ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return false
	}
	return !o.Upper.entries[p[:ends[lo-1]]].IsDir()
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
