// Package atomicfile writes a file so that no reader ever sees half of it:
// the bytes go to a temporary name in the same directory, which is renamed
// over the final name only once they are all there. A failed or cancelled
// write leaves nothing behind. It uses the standard library only, so the
// guest init can use it too.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package makes
// (".NAME.tmp-…"), so that a stale one of ours can be told from the
// user's files.
const TempPrefix = "."

// TempPattern is the os.CreateTemp pattern for a temporary sibling of p.
func TempPattern(p string) string { return TempPrefix + filepath.Base(p) + ".tmp-*" }

// Write writes p through fn with mode perm.
func Write(p string, perm os.FileMode, fn func(w io.Writer) error) error {
	return WriteFile(p, perm, func(f *os.File) error { return fn(f) })
}

// WriteFile is Write for writers that need the file itself (to seek, to
// write at offsets, to truncate it to a size).
func WriteFile(p string, perm os.FileMode, fn func(f *os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), TempPattern(p))
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fn(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// WriteBytes writes data to p.
func WriteBytes(p string, data []byte, perm os.FileMode) error {
	return Write(p, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CopyFile copies the file src to dst.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return Write(dst, perm, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
