// Package ctxio makes long reads and writes stoppable: its wrappers check
// a context before every call, so a step that streams gigabytes through
// them returns ctx's error within one read or write of a Ctrl-C.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r, failing every read once ctx is done.
func Reader(ctx context.Context, r io.Reader) io.Reader { return &reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Writer returns w, failing every write once ctx is done.
func Writer(ctx context.Context, w io.Writer) io.Writer { return &writer{ctx, w} }

type writer struct {
	ctx context.Context
	w   io.Writer
}

func (c *writer) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// WriteSeeker is Writer for an io.WriteSeeker; seeks pass through.
func WriteSeeker(ctx context.Context, w io.WriteSeeker) io.WriteSeeker {
	return &writeSeeker{writer{ctx, w}, w}
}

type writeSeeker struct {
	writer
	s io.Seeker
}

func (c *writeSeeker) Seek(off int64, whence int) (int64, error) { return c.s.Seek(off, whence) }

// WriterAt returns w, failing every write once ctx is done.
func WriterAt(ctx context.Context, w io.WriterAt) io.WriterAt { return &writerAt{ctx, w} }

type writerAt struct {
	ctx context.Context
	w   io.WriterAt
}

func (c *writerAt) WriteAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.WriteAt(p, off)
}
