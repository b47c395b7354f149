package closure

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// maxConfigSize bounds the configuration files read from an image.
const maxConfigSize = 1 << 20

// stat follows links in p inside fsys; it returns nil, nil when p does not exist.
func stat(fsys rootfs.FS, p string) (*rootfs.Entry, error) {
	e, _, err := rootfs.Resolve(fsys, p)
	switch {
	case err == nil:
		return e, nil
	case isNotExist(err):
		return nil, nil
	}
	return nil, err
}

// isNotExist is true for the errors Resolve gives for a missing path or a
// path through a non-directory: both mean "there is nothing there".
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, rootfs.ErrNotDir)
}

// exists reports whether p resolves to something in fsys.
func exists(fsys rootfs.FS, p string) bool {
	e, _ := stat(fsys, p)
	return e != nil
}

// isDir reports whether p resolves to a directory in fsys.
func isDir(fsys rootfs.FS, p string) bool {
	e, _ := stat(fsys, p)
	return e != nil && e.IsDir()
}

// readSmallFile returns the content of the regular file p (links followed),
// refusing files larger than maxConfigSize.
func readSmallFile(fsys rootfs.FS, p string) ([]byte, error) {
	e, _, err := rootfs.Resolve(fsys, p)
	if err != nil {
		return nil, err
	}
	if !e.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	rc, err := e.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxConfigSize)
	}
	return b, nil
}

// glob expands a shell pattern against fsys, component by component, in
// sorted order. Links are followed for the directories walked through.
func glob(fsys rootfs.FS, pattern string) ([]string, error) {
	matches := []string{"/"}
	for _, comp := range strings.Split(strings.Trim(rootfs.Clean(pattern), "/"), "/") {
		if comp == "" {
			continue
		}
		if _, err := path.Match(comp, ""); err != nil {
			return nil, fmt.Errorf("pattern %s: %w", pattern, err)
		}
		var next []string
		for _, dir := range matches {
			if !strings.ContainsAny(comp, "*?[\\") {
				if p := path.Join(dir, comp); exists(fsys, p) {
					next = append(next, p)
				}
				continue
			}
			d, _ := stat(fsys, dir)
			if d == nil || !d.IsDir() {
				continue
			}
			ents, err := fsys.ReadDir(d.Path)
			if err != nil {
				continue
			}
			for _, e := range ents {
				name := path.Base(e.Path)
				if ok, _ := path.Match(comp, name); ok {
					next = append(next, path.Join(dir, name))
				}
			}
		}
		matches = next
	}
	return matches, nil
}
