// Package initrd writes the initrd of an image layout: a newc cpio archive of
// a rootfs.Tree (the init, the kernel modules, the init's config),
// compressed with a format the kernel unpacks itself.
//
// The archive is a function of the tree and the options alone: entries in
// path order with every directory before its contents, inode numbers handed
// out in that order, one fixed mtime, and compressors configured to give the
// same bytes on every run.
package initrd

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path"

	"github.com/klauspost/compress/zstd"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Compression is how the cpio archive is compressed.
type Compression int

const (
	// Zstd is the default: under TCG the kernel unpacks it faster than gzip
	// (see the package README/benchmark), and CONFIG_RD_ZSTD is on in the
	// distribution cloud kernels.
	Zstd Compression = iota
	Gzip
	// None writes the bare cpio archive.
	None
)

// String names the compression as file tools do.
func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case Gzip:
		return "gzip"
	case None:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

type options struct {
	modTime     int64
	compression Compression
}

// Option changes how Write writes.
type Option func(*options)

// WithModTime sets the mtime (seconds since the epoch) of every entry; the
// caller passes SOURCE_DATE_EPOCH here. The default is 0.
func WithModTime(unixSeconds int64) Option {
	return func(o *options) { o.modTime = unixSeconds }
}

// WithCompression picks the compression (default Zstd).
func WithCompression(c Compression) Option {
	return func(o *options) { o.compression = c }
}

// Write writes fsys as a compressed newc cpio archive to w. The root
// directory itself is not stored: the kernel unpacks into its own root.
// It stops with ctx's error at the next write once ctx is done.
func Write(ctx context.Context, w io.Writer, fsys *rootfs.Tree, opts ...Option) error {
	w = ctxio.Writer(ctx, w)
	o := options{compression: Zstd}
	for _, opt := range opts {
		opt(&o)
	}
	if o.modTime < 0 || o.modTime > 0xffffffff {
		return fmt.Errorf("initrd: mtime %d does not fit the cpio header", o.modTime)
	}
	cw, err := compressor(w, o.compression)
	if err != nil {
		return err
	}
	if err := writeCpio(cw, fsys, uint32(o.modTime)); err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

// compressor wraps w in the chosen compression. Both encoders are
// deterministic: zstd with one goroutine and no content-dependent
// parallelism, gzip with an empty header (no name, no mtime).
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		// The kernel's zstd decoder needs a frame it can decode in a bounded
		// window; 8 MiB is well below its limit and plenty for an initrd.
		return zstd.NewWriter(w,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithWindowSize(8<<20),
			zstd.WithEncoderCRC(true))
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("initrd: unknown compression %v", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// writeCpio writes the tree's entries in Walk order (parents first) and the
// trailer.
func writeCpio(w io.Writer, fsys *rootfs.Tree, mtime uint32) error {
	subdirs := map[string]uint32{}
	if err := fsys.Walk(func(e *rootfs.Entry) error {
		if e.IsDir() && e.Path != "/" {
			subdirs[path.Dir(e.Path)]++
		}
		return nil
	}); err != nil {
		return err
	}
	c := &cpioWriter{w: bufio.NewWriterSize(w, 256<<10), mtime: mtime}
	err := fsys.Walk(func(e *rootfs.Entry) error {
		if e.Path == "/" {
			return nil
		}
		// A directory's link count is its "." and its entry in the parent,
		// plus one ".." for every subdirectory.
		return c.entry(e, 2+subdirs[e.Path])
	})
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := c.trailer(); err != nil {
		return err
	}
	return c.w.Flush()
}
