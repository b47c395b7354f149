package disk

import (
	"bytes"
	"fmt"
	"hash"
	"io"
	"os"
)

// copyBufferSize is the chunk copied (and tested for zeros) at a time.
const copyBufferSize = 1 << 20

// copyFileAt streams the host file src into w at off, feeding its bytes to
// h. Chunks that are all zero are skipped: the output starts as one hole,
// so skipping keeps it sparse. The file must still have the size it was
// planned with, or the layout would be wrong.
func copyFileAt(w io.WriterAt, off int64, src string, size int64, h hash.Hash, buf []byte) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var done int64
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			chunk := buf[:n]
			h.Write(chunk)
			if done+int64(n) > size {
				return fmt.Errorf("%s: grew while being copied (planned %d bytes)", src, size)
			}
			if !isZero(chunk) {
				if _, werr := w.WriteAt(chunk, off+done); werr != nil {
					return fmt.Errorf("copying %s: %w", src, werr)
				}
			}
			done += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", src, err)
		}
	}
	if done != size {
		return fmt.Errorf("%s: changed size while being copied (planned %d bytes, read %d)", src, size, done)
	}
	return nil
}

var zeroChunk = make([]byte, copyBufferSize)

func isZero(b []byte) bool {
	return bytes.Equal(b, zeroChunk[:len(b)])
}
