package format

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"testing"
)

// TestParallelGzip reads back what parallelGzip wrote with the standard
// library, for sizes around the block size, and wants the same bytes
// whatever the number of workers.
func TestParallelGzip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{0, 1, gzipBlock - 1, gzipBlock, gzipBlock + 1, 5*gzipBlock + 12345} {
		in := make([]byte, size)
		for i := range in {
			if i%3000 < 1000 {
				in[i] = byte(r.Uint32())
			} else {
				in[i] = byte(i / 7)
			}
		}
		var outs [][]byte
		for _, workers := range []int{1, 3} {
			var buf bytes.Buffer
			z := newParallelGzip(&buf, workers)
			// Uneven writes, to cross block boundaries mid-write.
			for p := in; len(p) > 0; {
				n := min(len(p), 777777)
				if _, err := z.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			zr.Multistream(false)
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("size %d, %d workers: read back %d bytes, err %v", size, workers, len(got), err)
			}
			outs = append(outs, buf.Bytes())
		}
		if !bytes.Equal(outs[0], outs[1]) {
			t.Errorf("size %d: output depends on the number of workers", size)
		}
	}
}
