package oci

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
)

// Store is the local content store: blobs by digest under
// DIR/blobs/sha256/<hex> (the OCI image-layout naming), so that a second
// pull of a digest reads no byte from the registry. A blob enters only
// once its digest and size are checked, and is checked again whenever it
// is read.
type Store struct{ dir string }

// StoreDir is the store's subdirectory of the cache.
const StoreDir = "oci"

// OpenStore opens the store in dir, or in the cache when dir is "".
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		root, err := cachedir.Dir()
		if err != nil {
			return nil, err
		}
		if err := cachedir.MkdirPrivate(root); err != nil {
			return nil, err
		}
		dir = filepath.Join(root, StoreDir)
	}
	if err := cachedir.MkdirPrivate(filepath.Join(dir, "blobs", "sha256")); err != nil {
		return nil, err
	}
	return &Store{dir: dir}, nil
}

// Path is where the blob h is (or would be) kept.
func (s *Store) Path(h v1.Hash) string { return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex) }

// CopyTo puts the stored blob d at dst, after checking its digest and
// size. It reports false, having written nothing, when the store lacks the
// blob; a stored blob that fails the check is removed and reported
// missing, so the caller downloads it again.
func (s *Store) CopyTo(ctx context.Context, d v1.Descriptor, dst string) (bool, error) {
	p := s.Path(d.Digest)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = copyVerified(io.Discard, ctxio.Reader(ctx, f), d, "stored blob")
	f.Close()
	if errors.Is(err, ErrDigest) {
		os.Remove(p)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, share(p, dst)
}

// Add writes a blob read from r to dst, only if its digest and size are
// d's, and then keeps it in the store.
func (s *Store) Add(ctx context.Context, d v1.Descriptor, r io.Reader, dst string, what string) error {
	if err := atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		return copyVerified(w, ctxio.Reader(ctx, r), d, what)
	}); err != nil {
		return err
	}
	return share(dst, s.Path(d.Digest))
}

// share makes dst a hard link of src (one copy on disk: a pulled layout
// and the store share their blobs; uni opens layout files read-only, and a
// stored blob is checked whenever it is read), or a copy of it where
// links do not work (another file system). dst appears whole or not at all.
func share(src, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), fmt.Sprintf("%s%s.tmp-%d%d", atomicfile.TempPrefix, filepath.Base(dst), os.Getpid(), time.Now().UnixNano()))
	os.Remove(tmp)
	if err := os.Link(src, tmp); err == nil {
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	}
	return atomicfile.CopyFile(src, dst, 0o644)
}

// copyVerified copies at most d.Size+1 bytes of r to w and fails with
// ErrDigest unless they are exactly d's bytes. Writes go out in 256 KiB
// pieces rather than in each network read's (a pull spent a quarter of
// its time in write calls); the caller discards w on an error.
func copyVerified(w io.Writer, r io.Reader, d v1.Descriptor, what string) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(w, 256<<10)
	n, err := io.Copy(io.MultiWriter(bw, h), io.LimitReader(r, d.Size+1))
	if err == nil {
		err = bw.Flush()
	}
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case n > d.Size:
		return fmt.Errorf("%s: %w: more than the %d bytes of %s", what, ErrDigest, d.Size, d.Digest)
	case err != nil && n == d.Size && got != d.Digest.Hex:
		return fmt.Errorf("%s: %w: sha256:%s, want %s: %w", what, ErrDigest, got, d.Digest, err)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case n != d.Size || got != d.Digest.Hex:
		return fmt.Errorf("%s: %w: %d bytes, sha256:%s, want %d bytes, %s", what, ErrDigest, n, got, d.Size, d.Digest)
	}
	return nil
}
