// Package ctxio makes long writes stoppable: its wrappers check a context
// before every write, so a writer that streams gigabytes through them
// returns ctx's error within one write of a Ctrl-C.
package ctxio

import (
	"context"
	"io"
)

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
