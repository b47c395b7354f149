package format

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// extents finds the parts of a source that may hold data. For a file it
// asks the file system (SEEK_DATA/SEEK_HOLE), so the holes of a sparse
// disk.img are never read; anything else is one extent.
type extents struct {
	src Source
	fd  int // -1: not a file, or the file system cannot tell
}

func newExtents(src Source) *extents {
	e := &extents{src: src, fd: -1}
	if f, ok := src.R.(*os.File); ok {
		fd := int(f.Fd())
		if _, err := unix.Seek(fd, 0, unix.SEEK_DATA); err == nil || errors.Is(err, unix.ENXIO) {
			e.fd = fd
		}
	}
	return e
}

// next returns the first data extent [start, end) at or after off;
// start == Size when there is none.
func (e *extents) next(off int64) (start, end int64) {
	if off >= e.src.Size {
		return e.src.Size, e.src.Size
	}
	if e.fd < 0 {
		return off, e.src.Size
	}
	s, err := unix.Seek(e.fd, off, unix.SEEK_DATA)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return e.src.Size, e.src.Size
		}
		return off, e.src.Size // the file system cannot tell: read it all
	}
	if s >= e.src.Size {
		return e.src.Size, e.src.Size
	}
	h, err := unix.Seek(e.fd, s, unix.SEEK_HOLE)
	if err != nil || h > e.src.Size {
		h = e.src.Size
	}
	return s, h
}

// scan calls fn, in order, for every block of bs bytes of src that is not
// all zero, with its index and its bytes (the last block zero-padded to
// bs). It reads each block into a buffer from next, which it calls again
// only after handing a buffer to fn: a zero block's buffer is reused.
func scan(ctx context.Context, src Source, bs int, next func() ([]byte, error), fn func(idx int64, b []byte) error) error {
	ext := newExtents(src)
	B := int64(bs)
	var dataEnd int64
	var b []byte
	for off := int64(0); off < src.Size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if off >= dataEnd {
			var start int64
			start, dataEnd = ext.next(off)
			if start >= src.Size {
				return nil
			}
			if start/B*B > off {
				off = start / B * B
			}
		}
		if b == nil {
			var err error
			if b, err = next(); err != nil {
				return err
			}
			b = b[:bs]
		}
		n := min(B, src.Size-off)
		if _, err := src.R.ReadAt(b[:n], off); err != nil && err != io.EOF {
			return fmt.Errorf("reading the disk at %d: %w", off, err)
		}
		clear(b[n:])
		if !isZero(b) {
			if err := fn(off/B, b); err != nil {
				return err
			}
			b = nil
		}
		off += B
	}
	return nil
}

// scanBuf scans with one buffer for every block.
func scanBuf(ctx context.Context, src Source, bs int, fn func(idx int64, b []byte) error) error {
	buf := make([]byte, bs)
	return scan(ctx, src, bs, func() ([]byte, error) { return buf, nil }, fn)
}

// isZero reports whether b is all zero bytes.
func isZero(b []byte) bool {
	for len(b) >= len(zeroPage) {
		if !bytes.Equal(b[:len(zeroPage)], zeroPage[:]) {
			return false
		}
		b = b[len(zeroPage):]
	}
	return bytes.Equal(b, zeroPage[:len(b)])
}

var zeroPage [64 << 10]byte

// job is one non-zero block on its way through a pipeline.
type job struct {
	idx  int64
	in   []byte
	out  bytes.Buffer
	sum  uint64 // xxHash64 of in, for writers that derive ids (see hashed)
	err  error
	done chan struct{}
}

// pipeline scans src in blocks of bs bytes and passes every non-zero block
// through work, on workers goroutines at once, then to sink in the order of
// the disk. At most 2×workers+2 blocks are in flight, so memory stays
// bounded whatever the disk's size. work gets one state per worker (its
// compressor), made by newState.
func pipeline[S any](ctx context.Context, src Source, bs, workers int, newState func() S, work func(st S, j *job) error, sink func(j *job) error) error {
	g, ctx := errgroup.WithContext(ctx)
	inflight := 2*workers + 2
	free := make(chan *job, inflight)
	for range inflight {
		free <- &job{in: make([]byte, bs)}
	}
	order := make(chan *job, inflight)
	todo := make(chan *job, inflight)
	g.Go(func() error {
		defer close(order)
		defer close(todo)
		var j *job
		next := func() ([]byte, error) {
			select {
			case j = <-free:
				return j.in, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return scan(ctx, src, bs, next, func(idx int64, _ []byte) error {
			j.idx, j.err, j.done = idx, nil, make(chan struct{})
			j.out.Reset()
			order <- j // never blocks: at most inflight jobs exist
			todo <- j
			return nil
		})
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			st := newState()
			for j := range todo {
				if ctx.Err() == nil {
					j.err = work(st, j)
				}
				close(j.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		for j := range order {
			<-j.done
			if j.err != nil {
				return j.err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := sink(j); err != nil {
				return err
			}
			free <- j
		}
		return nil
	})
	return g.Wait()
}

// hashed is a pipeline whose workers only hash each block (for the
// content id), so hashing runs on all cores beside the writes.
func hashed(ctx context.Context, src Source, bs, workers int, id *contentID, sink func(idx int64, b []byte) error) error {
	return pipeline(ctx, src, bs, workers, func() struct{} { return struct{}{} }, func(_ struct{}, j *job) error {
		j.sum = xxhash.Sum64(j.in)
		return nil
	}, func(j *job) error {
		id.add(j.idx, j.sum)
		return sink(j.idx, j.in)
	})
}
