package format

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"

	"github.com/uniforge/packer-plugin-unikernel/internal/deflate"
)

// gzipBlock is the unit one core deflates at a time.
const gzipBlock = 1 << 20

// parallelGzip writes one gzip member (RFC 1952) whose DEFLATE stream is
// made on several cores: the input is cut into 1 MiB blocks, each
// deflated on its own and ended with a sync flush (byte-aligned, not
// final), the last one closed; their concatenation is one valid stream.
// It holds at most 2×workers blocks. The header carries no name and no
// time, so the output depends only on the input.
type parallelGzip struct {
	w       io.Writer
	workers int
	pending [][]byte // full blocks waiting for a batch
	cur     []byte
	crc     uint32
	size    uint32
	started bool
	err     error
	outs    []bytes.Buffer
	free    [][]byte
}

func newParallelGzip(w io.Writer, workers int) *parallelGzip {
	return &parallelGzip{w: w, workers: max(workers, 1)}
}

func (z *parallelGzip) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n := len(p)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(n)
	for len(p) > 0 {
		if z.cur == nil {
			if k := len(z.free); k > 0 {
				z.cur, z.free = z.free[k-1][:0], z.free[:k-1]
			} else {
				z.cur = make([]byte, 0, gzipBlock)
			}
		}
		c := copy(z.cur[len(z.cur):cap(z.cur)], p)
		z.cur, p = z.cur[:len(z.cur)+c], p[c:]
		if len(z.cur) == gzipBlock {
			z.pending = append(z.pending, z.cur)
			z.cur = nil
			if len(z.pending) == 2*z.workers {
				if z.err = z.flushBatch(false); z.err != nil {
					return 0, z.err
				}
			}
		}
	}
	return n, nil
}

// flushBatch deflates the pending blocks in parallel and writes them in
// order; with last, the final block (possibly empty) closes the stream.
func (z *parallelGzip) flushBatch(last bool) error {
	if !z.started {
		z.started = true
		// Magic, deflate, no flags, no time, no extra flags, OS unknown.
		if _, err := z.w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}); err != nil {
			return err
		}
	}
	blocks := z.pending
	if last {
		blocks = append(blocks, z.cur)
	}
	for len(z.outs) < len(blocks) {
		z.outs = append(z.outs, bytes.Buffer{})
	}
	errs := make([]error, len(blocks))
	var wg sync.WaitGroup
	sem := make(chan struct{}, z.workers)
	for i, b := range blocks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out := &z.outs[i]
			out.Reset()
			w, err := deflate.NewWriter(out, gzipLevel)
			if err == nil {
				_, err = w.Write(b)
			}
			if err == nil {
				if last && i == len(blocks)-1 {
					err = w.Close()
				} else {
					err = w.Flush()
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range blocks {
		if errs[i] != nil {
			return errs[i]
		}
		if _, err := z.w.Write(z.outs[i].Bytes()); err != nil {
			return err
		}
	}
	for _, b := range z.pending {
		z.free = append(z.free, b)
	}
	z.pending = z.pending[:0]
	return nil
}

// gzipLevel matches gzip's default in size (see internal/deflate).
const gzipLevel = 5

// Close ends the stream and writes the trailer.
func (z *parallelGzip) Close() error {
	if z.err != nil {
		return z.err
	}
	if z.err = z.flushBatch(true); z.err != nil {
		return z.err
	}
	var t [8]byte
	binary.LittleEndian.PutUint32(t[0:], z.crc)
	binary.LittleEndian.PutUint32(t[4:], z.size)
	_, z.err = z.w.Write(t[:])
	if z.err == nil {
		z.err = io.ErrClosedPipe // no more writes
		return nil
	}
	return z.err
}
