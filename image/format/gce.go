package format

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
)

const (
	gib       = 1 << 30
	gceBlock  = 64 << 10 // granularity of the sparse map
	tarRecord = 10240    // GNU tar pads archives to 20 blocks
)

// writeGCE writes what Google Compute Engine imports: a gzip'd tar
// holding one file, disk.raw, whose size is rounded up to a GiB, in GNU
// tar's oldgnu format with a sparse map (what `tar --format=oldgnu -Sczf`
// makes, as Google documents). A first pass finds the non-zero runs, the
// second stores only those; gzip runs on all cores (parallelGzip).
func writeGCE(ctx context.Context, src Source, f *os.File, _ string, o Options) error {
	var runs []sparseRun
	err := scanBuf(ctx, src, gceBlock, func(idx int64, b []byte) error {
		off := idx * gceBlock
		n := min(gceBlock, src.Size-off)
		if k := len(runs) - 1; k >= 0 && runs[k].off+runs[k].len == off {
			runs[k].len += n
		} else {
			runs = append(runs, sparseRun{off, n})
		}
		return nil
	})
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	gz := newParallelGzip(bw, o.Workers)
	tw := &countWriter{w: gz}
	if err := writeSparseTar(ctx, tw, src, "disk.raw", roundUp(src.Size, gib), o.SourceDateEpoch, runs); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

type sparseRun struct{ off, len int64 }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeSparseTar writes one oldgnu sparse entry ('S') of realSize bytes
// whose data are the runs of src, then the end of the archive.
func writeSparseTar(ctx context.Context, w *countWriter, src Source, name string, realSize, mtime int64, runs []sparseRun) error {
	var stored int64
	for _, r := range runs {
		stored += r.len
	}
	// GNU tar ends the map with an empty run at the real size when the
	// file ends in a hole, so that readers know where it ends.
	m := runs
	if len(m) == 0 || m[len(m)-1].off+m[len(m)-1].len != realSize {
		m = append(m[:len(m):len(m)], sparseRun{realSize, 0})
	}
	var h [512]byte
	copy(h[0:100], name)
	putOctal(h[100:108], 0o644)
	putOctal(h[108:116], 0)
	putOctal(h[116:124], 0)
	putNumeric(h[124:136], stored)
	putNumeric(h[136:148], max(mtime, 0))
	h[156] = 'S'
	copy(h[257:265], "ustar  \x00") // oldgnu magic and version
	copy(h[265:], "root")
	copy(h[297:], "root")
	first := min(len(m), 4)
	for i, r := range m[:first] {
		putNumeric(h[386+24*i:386+24*i+12], r.off)
		putNumeric(h[386+24*i+12:386+24*i+24], r.len)
	}
	rest := m[first:]
	if len(rest) > 0 {
		h[482] = 1
	}
	putNumeric(h[483:495], realSize)
	tarChecksum(&h)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	for len(rest) > 0 {
		var x [512]byte
		k := min(len(rest), 21)
		for i, r := range rest[:k] {
			putNumeric(x[24*i:24*i+12], r.off)
			putNumeric(x[24*i+12:24*i+24], r.len)
		}
		rest = rest[k:]
		if len(rest) > 0 {
			x[504] = 1
		}
		if _, err := w.Write(x[:]); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	for _, r := range runs {
		for off := r.off; off < r.off+r.len; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), r.off+r.len-off)
			if _, err := src.R.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				return fmt.Errorf("reading the disk at %d: %w", off, err)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			off += n
		}
	}
	if pad := roundUp(w.n, 512) - w.n; pad > 0 {
		if _, err := w.Write(zeroPage[:pad]); err != nil {
			return err
		}
	}
	end := roundUp(w.n+1024, tarRecord) - w.n // two zero blocks, then to the record
	_, err := w.Write(make([]byte, end))
	return err
}

// putOctal writes n as NUL-terminated zero-padded octal.
func putOctal(b []byte, n int64) {
	s := strconv.FormatInt(n, 8)
	for len(s) < len(b)-1 {
		s = "0" + s
	}
	copy(b, s)
	b[len(b)-1] = 0
}

// putNumeric writes n as octal when it fits, else in GNU's base-256 form.
func putNumeric(b []byte, n int64) {
	if n < 1<<(3*(len(b)-1)) {
		putOctal(b, n)
		return
	}
	clear(b)
	for i := len(b) - 1; i > 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	b[0] = 0x80
}

func tarChecksum(h *[512]byte) {
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	s := strconv.FormatInt(sum, 8)
	for len(s) < 6 {
		s = "0" + s
	}
	copy(h[148:], s)
	h[154], h[155] = 0, ' '
}
