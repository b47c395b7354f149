// Package squashfs writes a rootfs.Tree as a squashfs 4.0 image compressed
// with zstd, as the Linux kernel mounts it: data blocks compressed in
// parallel and written in a fixed order, file tails and small files packed
// into fragment blocks, identical files stored once. The same tree and
// options always give the same bytes.
package squashfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/bits"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Write writes fsys as a squashfs image to w, from w's current offset on.
// It seeks back once to fill in the superblock, and leaves w at the end of
// the image, which is padded to a multiple of 4 KiB.
// It stops with ctx's error at the next write once ctx is done.
func Write(ctx context.Context, w io.WriteSeeker, fsys *rootfs.Tree, opts ...Option) error {
	w = ctxio.WriteSeeker(ctx, w)
	cfg, err := newConfig(opts)
	if err != nil {
		return err
	}
	base, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	root, files, err := buildNodes(fsys)
	if err != nil {
		return err
	}
	ids, err := newIDTable(fsys)
	if err != nil {
		return err
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(cfg.level)),
		zstd.WithEncoderConcurrency(cfg.workers),
		zstd.WithEncoderCRC(false),
		// The kernel decodes with a window of one block: no frame may ask for more.
		zstd.WithSingleSegment(true))
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	defer enc.Close()

	out := &countingWriter{w: bufio.NewWriterSize(w, 1<<20)}
	if _, err := out.Write(make([]byte, superblockSize)); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	data, err := writeData(cfg, enc, out, superblockSize, files)
	if err != nil {
		return err
	}

	var count uint32
	numberInodes(root, &count)
	tb := &tableBuilder{
		inodes: newMetaWriter(enc), dirs: newMetaWriter(enc),
		ids: ids, modTime: uint32(cfg.modTime),
		files: data.files, inodeCount: count,
	}
	tb.writeDir(root)
	tb.inodes.flush()
	tb.dirs.flush()

	sb := superblock{
		inodeCount:    count,
		modTime:       uint32(cfg.modTime),
		blockSize:     uint32(cfg.blockSize),
		fragmentCount: uint32(len(data.frags)),
		blockLog:      uint16(bits.TrailingZeros(uint(cfg.blockSize))),
		flags:         flagNoXattrs | flagDuplicates | flagAlwaysFragments,
		idCount:       uint16(len(ids.ids)),
		rootInode:     root.ref,
	}
	// The kernel checks that the tables follow each other in this order
	// and that the id table's index ends the image.
	sb.inodeTable = out.n
	out.Write(tb.inodes.out)
	sb.dirTable = out.n
	out.Write(tb.dirs.out)

	frags := newMetaWriter(enc)
	for _, f := range data.frags {
		entry := le.AppendUint64(make([]byte, 0, fragmentEntrySize), f.start)
		entry = le.AppendUint32(entry, f.size)
		frags.write(le.AppendUint32(entry, 0))
	}
	sb.fragmentTable = writeIndexedTable(out, frags)

	idw := newMetaWriter(enc)
	for _, id := range ids.ids {
		idw.write(le.AppendUint32(nil, id))
	}
	sb.idTable = writeIndexedTable(out, idw)
	sb.bytesUsed = out.n
	if pad := (4096 - out.n%4096) % 4096; pad > 0 {
		out.Write(make([]byte, pad))
	}
	if out.err != nil {
		return fmt.Errorf("squashfs: %w", out.err)
	}
	if err := out.w.Flush(); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if _, err := w.Seek(base, io.SeekStart); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if _, err := w.Write(sb.marshal()); err != nil {
		return fmt.Errorf("squashfs: writing the superblock: %w", err)
	}
	if _, err := w.Seek(base+int64(out.n), io.SeekStart); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	return nil
}

// writeIndexedTable writes a table's metadata blocks and then the index of
// their image offsets, and returns where the index starts (the offset the
// superblock holds).
func writeIndexedTable(out *countingWriter, m *metaWriter) uint64 {
	m.flush()
	start := out.n
	out.Write(m.out)
	indexStart := out.n
	var index []byte
	for _, b := range m.blockStarts {
		index = le.AppendUint64(index, start+b)
	}
	out.Write(index)
	return indexStart
}

// countingWriter tracks the image offset and keeps the first error, so
// table writing reads as a plain sequence.
type countingWriter struct {
	w   *bufio.Writer
	n   uint64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += uint64(n)
	c.err = err
	return n, err
}

// WriteFile writes fsys as a squashfs image to the file at path, through
// a temporary file in the same directory that is renamed into place only
// when the image is complete.
func WriteFile(ctx context.Context, path string, fsys *rootfs.Tree, opts ...Option) error {
	err := atomicfile.WriteFile(path, 0o644, func(f *os.File) error { return Write(ctx, f, fsys, opts...) })
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
