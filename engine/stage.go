package engine

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/baseimage"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// stageRoot is a stage's root as the build goes: its base, and what COPY
// wrote over it.
type stageRoot struct {
	upper *rootfs.Tree
	fs    rootfs.Overlay
	image *baseimage.Image // the base image; nil for scratch and host
	// lines says which COPY wrote each path of upper, for errors about it.
	lines map[string]unifile.Location
}

// baseRoot returns the FS a stage starts from.
func (b *builder) baseRoot(ctx context.Context, st *unifile.Stage, done []*stageRoot) (rootfs.FS, *baseimage.Image, error) {
	switch st.Base.Kind {
	case unifile.BaseScratch:
		return nil, nil, nil
	case unifile.BaseHost:
		return rootfs.HostFS{Root: b.req.HostRoot}, nil, nil
	case unifile.BaseStage:
		prev := done[st.Base.Stage]
		return prev.fs, prev.image, nil
	default:
		img, err := b.pull(ctx, st.Base.Ref)
		if err != nil {
			return nil, nil, b.lineErrf(st.Location, "FROM %s: %w", st.Base.Ref, err)
		}
		return img.Tree, img, nil
	}
}

// pull fetches an image once per build.
func (b *builder) pull(ctx context.Context, ref string) (*baseimage.Image, error) {
	if img, ok := b.images[ref]; ok {
		return img, nil
	}
	b.progress("pulling %s", ref)
	img, err := baseimage.Pull(ctx, ref, append([]baseimage.Option{baseimage.WithCacheDir(b.cacheDir)}, b.req.PullOptions...)...)
	if err != nil {
		return nil, err
	}
	b.images[ref] = img
	return img, nil
}

// copyInto carries out one COPY into the stage root.
func (b *builder) copyInto(ctx context.Context, root *stageRoot, c *unifile.Copy, done []*stageRoot) error {
	var srcs []source
	for _, s := range c.Sources {
		got, err := b.copySources(ctx, c, s, done)
		if err != nil {
			return b.lineErrf(c.Location, "COPY %s: %w", s, err)
		}
		srcs = append(srcs, got...)
	}
	for _, in := range c.Inline {
		srcs = append(srcs, source{rel: in.Name, entry: &rootfs.Entry{Path: "/" + in.Name, Mode: 0o644, Data: []byte(in.Content),
			Origin: rootfs.Origin{Kind: rootfs.OriginUnifile, Path: b.file, Line: c.Location.Line}}})
	}
	uid, gid, err := resolveUser(root.view(), c.Chown)
	if err != nil {
		return b.lineErrf(c.Location, "COPY --chown=%s: %w", c.Chown, err)
	}
	dest := c.Dest
	if !path.IsAbs(dest) {
		dest = path.Join(c.Workdir, dest)
		if c.Workdir == "" {
			dest = "/" + dest
		}
	}
	// A directory source (or several sources) copies into dest as a
	// directory; one directory source that COPY creates dest from gives
	// dest its mode, as in BuildKit.
	var dirSelf *rootfs.Entry
	files := srcs[:0:0]
	for _, s := range srcs {
		if s.rel == dirItself {
			dirSelf = s.entry
			continue
		}
		files = append(files, s)
	}
	existed := isDir(root.fs, dest)
	intoDir := strings.HasSuffix(c.Dest, "/") || len(c.Sources)+len(c.Inline) > 1 || len(files) > 1 || existed || dirSelf != nil
	dest = realDest(root.fs, rootfs.Clean(dest))
	for _, s := range files {
		e := *s.entry
		e.Path = dest
		if intoDir {
			e.Path = rootfs.Clean(dest + "/" + s.rel)
		}
		if c.From.Kind == unifile.FromContext || c.Chown != "" {
			e.UID, e.GID = uid, gid
		}
		if c.Chmod != nil && !e.IsSymlink() {
			e.Mode = chmod(e.Mode, *c.Chmod)
		}
		if err := root.upper.Add(e); err != nil {
			return b.lineErrf(c.Location, "COPY to %s: %w", rootfs.Quote(e.Path), err)
		}
		root.lines[e.Path] = c.Location
	}
	if intoDir {
		d := rootfs.Entry{Path: dest, Mode: fs.ModeDir | 0o755, UID: uid, GID: gid, Origin: rootfs.Generated}
		if dirSelf != nil && !existed && len(c.Sources)+len(c.Inline) == 1 {
			d.Mode, d.Origin = dirSelf.Mode, dirSelf.Origin
			if c.Chmod != nil {
				d.Mode = chmod(d.Mode, *c.Chmod)
			}
		}
		if err := root.upper.Add(d); err != nil {
			return b.lineErrf(c.Location, "COPY to %s: %w", rootfs.Quote(dest), err)
		}
		root.lines[dest] = c.Location
	}
	return nil
}

// chmod replaces the permission bits of m (COPY --chmod).
func chmod(m fs.FileMode, perm uint32) fs.FileMode {
	return m&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) | rootfs.PermFromUnix(perm)
}

// copySources expands one source of a COPY, from the context, an earlier
// stage or an image.
func (b *builder) copySources(ctx context.Context, c *unifile.Copy, src string, done []*stageRoot) ([]source, error) {
	switch c.From.Kind {
	case unifile.FromStage:
		return fsSources(ctx, done[c.From.Stage].fs, src)
	case unifile.FromImage:
		img, err := b.pull(ctx, c.From.Ref)
		if err != nil {
			return nil, err
		}
		return fsSources(ctx, img.Tree, src)
	default:
		return b.context.sources(src)
	}
}

// fsSources returns the path src of fsys (following a link at src itself);
// a directory yields everything below it (rootfs.WalkDir: linear in its
// size, bounded in depth, stopped by ctx).
func fsSources(ctx context.Context, fsys rootfs.FS, src string) ([]source, error) {
	if fsys == nil {
		return nil, fmt.Errorf("not found: the stage is empty")
	}
	e, _, err := rootfs.Resolve(fsys, src)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		c := *e
		return []source{{rel: path.Base(rootfs.Clean(src)), entry: &c}}, nil
	}
	self := *e
	out := []source{{rel: dirItself, entry: &self}}
	err = rootfs.WalkDir(ctx, fsys, e.Path, func(k *rootfs.Entry, rel string) error {
		c := *k
		out = append(out, source{rel: rel, entry: &c})
		return nil
	})
	return out, err
}

func isDir(fsys rootfs.FS, p string) bool {
	e, _, err := rootfs.Resolve(fsys, p)
	return err == nil && e.IsDir()
}

// realDest follows links in the parents of dest, so that COPY into /lib/x
// on a root where /lib links to usr/lib writes /usr/lib/x and keeps the link.
func realDest(fsys rootfs.FS, dest string) string {
	dir, base := path.Split(dest)
	if e, _, err := rootfs.Resolve(fsys, dir); err == nil && e.IsDir() {
		return rootfs.Clean(e.Path + "/" + base)
	}
	return dest
}
