package format

import (
	"context"
	"os"
)

// rawBlock is the unit a raw copy tests for zeros: a hole is left for
// every all-zero MiB.
const rawBlock = 1 << 20

// writeRaw copies the disk, leaving holes where it is zero.
func writeRaw(ctx context.Context, src Source, f *os.File, _ string, o Options) error {
	_, err := copySparse(ctx, src, f, src.Size, nil, o.Workers)
	return err
}

// copySparse writes the non-zero MiB blocks of src into f at the same
// offsets and sizes f to size (≥ src.Size); the rest stays a hole. It
// feeds each block to id, when given, so callers can derive identifiers
// from the content.
func copySparse(ctx context.Context, src Source, f *os.File, size int64, id *contentID, workers int) (int64, error) {
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	var stored int64
	write := func(idx int64, b []byte) error {
		off := idx * rawBlock
		n := min(int64(len(b)), src.Size-off)
		stored += n
		_, err := f.WriteAt(b[:n], off)
		return err
	}
	if id == nil {
		return stored, scanBuf(ctx, src, rawBlock, write)
	}
	return stored, hashed(ctx, src, rawBlock, workers, id, write)
}
