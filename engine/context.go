package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// buildContext is the directory COPY takes its sources from, filtered by
// .dockerignore.
type buildContext struct {
	dir    string // absolute, symlinks resolved
	ignore *patternmatcher.PatternMatcher
}

// openContext opens dir as a build context. The ignore file is
// <unifile>.dockerignore when it exists (as BuildKit does for Dockerfiles),
// else <dir>/.dockerignore.
func openContext(dir, unifilePath string) (*buildContext, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", dir)
	}
	c := &buildContext{dir: abs}
	var patterns []string
	for _, f := range []string{unifilePath + ".dockerignore", filepath.Join(abs, ".dockerignore")} {
		r, err := os.Open(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		patterns, err = ignorefile.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		break
	}
	if len(patterns) > 0 {
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
		c.ignore = pm
	}
	return c, nil
}

// ignored says whether the context-relative path rel is excluded.
func (c *buildContext) ignored(rel string) bool {
	if c.ignore == nil || rel == "." {
		return false
	}
	m, err := c.ignore.MatchesOrParentMatches(rel)
	return err == nil && m
}

// source is one file, directory or link that a COPY takes.
type source struct {
	rel   string // relative to the source root, slash-separated; "." for a directory source itself
	entry *rootfs.Entry
}

// dirItself is the rel of the entry that stands for a directory source
// itself: COPY copies its contents, and it makes the destination a
// directory (with its mode, when COPY creates it), even when empty.
const dirItself = "."

// sources expands one COPY source of the context: a path or a glob, never
// leading outside the context. A directory yields its contents. As in
// BuildKit, a source that is a symlink is followed (inside the context
// only), and links inside a copied directory are copied as links.
func (c *buildContext) sources(src string) ([]source, error) {
	rel := path.Clean(strings.TrimPrefix(filepath.ToSlash(src), "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("%s is outside the build context %s: %w", src, c.dir, rootfs.ErrEscape)
	}
	if err := rootfs.CheckPath("/" + rel); err != nil {
		var ne *rootfs.NameError
		if errors.As(err, &ne) {
			ne.Path = "" // the COPY line names the source already
		}
		return nil, err
	}
	var matches []string
	if strings.ContainsAny(rel, "*?[") {
		err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(c.dir, p)
			r = filepath.ToSlash(r)
			if ok, _ := path.Match(rel, r); ok && !c.ignored(r) {
				matches = append(matches, r)
			}
			// A pattern matches paths of as many components as it has:
			// nothing deeper needs reading.
			if d.IsDir() && r != "." && strings.Count(r, "/") >= strings.Count(rel, "/") {
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no file of the build context matches", src)
		}
	} else {
		if c.ignored(rel) {
			return nil, fmt.Errorf("%s: excluded by .dockerignore", src)
		}
		matches = []string{rel}
	}
	var out []source
	for _, m := range matches {
		s, err := c.expand(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		out = append(out, s...)
	}
	return out, nil
}

// expand returns the context path rel, following a symlink at rel itself
// (never out of the context, never to a file .dockerignore excludes), and
// for a directory everything below it that .dockerignore keeps, with rel
// relative to that directory. Links below it are kept as links, whatever
// they point at: the guest resolves them inside its own root.
func (c *buildContext) expand(rel string) ([]source, error) {
	host := filepath.Join(c.dir, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return nil, fmt.Errorf("not found in the build context %s: %w", c.dir, err)
	}
	if real != c.dir && !strings.HasPrefix(real, c.dir+string(filepath.Separator)) {
		return nil, fmt.Errorf("leads outside the build context %s (to %s): %w", c.dir, real, rootfs.ErrEscape)
	}
	if realRel, _ := filepath.Rel(c.dir, real); c.ignored(filepath.ToSlash(realRel)) {
		return nil, fmt.Errorf("leads to %s, which .dockerignore excludes", filepath.ToSlash(realRel))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		e, err := rootfs.EntryFromFileInfo("/"+path.Base(rel), real, fi)
		if err != nil {
			return nil, err
		}
		realRel, _ := filepath.Rel(c.dir, real)
		e.Origin = rootfs.Origin{Kind: rootfs.OriginContext, Path: filepath.ToSlash(realRel)}
		return []source{{rel: path.Base(rel), entry: e}}, nil
	}
	self, err := rootfs.EntryFromFileInfo("/", real, fi)
	if err != nil {
		return nil, err
	}
	self.Origin = rootfs.Origin{Kind: rootfs.OriginContext, Path: rel}
	out := []source{{rel: dirItself, entry: self}}
	err = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == real {
			return nil
		}
		under, _ := filepath.Rel(real, p)
		ctxRel, _ := filepath.Rel(c.dir, p)
		if c.ignored(filepath.ToSlash(ctxRel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err := rootfs.CheckPath("/" + filepath.ToSlash(ctxRel)); err != nil {
			return fmt.Errorf("in the build context: %w", err)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, err := rootfs.EntryFromFileInfo("/"+filepath.ToSlash(under), p, fi)
		if err != nil {
			return err
		}
		e.Origin = rootfs.Origin{Kind: rootfs.OriginContext, Path: filepath.ToSlash(ctxRel)}
		if !e.IsDir() && !e.IsRegular() && !e.IsSymlink() {
			return fmt.Errorf("%s: unsupported file type %s", ctxRel, fi.Mode().Type())
		}
		out = append(out, source{rel: filepath.ToSlash(under), entry: e})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, err
}
