package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
)

// MaxExtractBytes bounds what Extract writes, so that a hostile package
// (a decompression bomb) cannot fill the disk. Kernel packages unpack to a
// few hundred MB.
const MaxExtractBytes = 4 << 30

// maxControlBytes bounds the control file; real ones are a few KB.
const maxControlBytes = 1 << 20

// Package is what Extract learned from a .deb.
type Package struct {
	Control Control
	// Files are the slash-separated paths written below the destination, in archive order.
	Files []string
	// Skipped are kept paths that were not written because they are not
	// regular files or directories (links, devices, fifos are never extracted).
	Skipped []string
}

// ReadControl returns the control fields of the .deb at debPath without
// reading its data archive.
func ReadControl(debPath string) (Control, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctl, err := readPackage(context.Background(), f, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	return ctl.Control, nil
}

// Extract writes the regular files of the .deb's data archive whose paths
// (slash-separated, without a leading "./") keep accepts into dest, which
// must be an empty directory. An entry whose path is absolute or climbs out
// with ".." fails the whole extraction, whether kept or not; links, devices
// and fifos are never written. On error dest may hold part of the files:
// callers extract into a temporary directory and remove it.
func Extract(ctx context.Context, debPath, dest string, keep func(name string) bool) (*Package, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pkg, err := ExtractReader(ctx, f, dest, keep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	return pkg, nil
}

// ExtractReader is Extract of the .deb read from r. Every read of r checks
// ctx, so a cancellation stops the decompression within one buffer.
func ExtractReader(ctx context.Context, r io.Reader, dest string, keep func(name string) bool) (*Package, error) {
	entries, err := os.ReadDir(dest)
	if err != nil {
		return nil, err
	}
	if len(entries) != 0 {
		return nil, fmt.Errorf("extract: destination %s is not empty", dest)
	}
	x := &extractor{dest: dest, keep: keep}
	return readPackage(ctx, ctxio.Reader(ctx, r), x)
}

// readPackage parses a .deb from r: its control fields and, when x is set, its
// data archive extracted by x. It is the one entry point that fuzzing drives.
func readPackage(ctx context.Context, r io.Reader, x *extractor) (*Package, error) {
	ar, err := newArReader(r)
	if err != nil {
		return nil, err
	}
	pkg := &Package{}
	sawBinary := false
	for {
		m, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch {
		case m.Name == "debian-binary":
			v, err := io.ReadAll(io.LimitReader(ar, 64))
			if err != nil {
				return nil, err
			}
			if !strings.HasPrefix(string(v), "2.") {
				return nil, fmt.Errorf("unsupported .deb format version %q", strings.TrimSpace(string(v)))
			}
			sawBinary = true
		case strings.HasPrefix(m.Name, "control.tar"):
			ctl, err := readControlTar(m.Name, ar)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.Name, err)
			}
			pkg.Control = ctl
			if x == nil {
				return pkg, nil
			}
		case strings.HasPrefix(m.Name, "data.tar"):
			if x == nil {
				continue
			}
			if pkg.Control == nil {
				return nil, fmt.Errorf("%s comes before control.tar", m.Name)
			}
			if err := x.extract(ctx, m.Name, ar, pkg); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Name, err)
			}
			return pkg, nil
		}
	}
	if !sawBinary {
		return nil, errors.New("not a .deb: no debian-binary member")
	}
	if pkg.Control == nil {
		return nil, errors.New("no control.tar member")
	}
	if x != nil {
		return nil, errors.New("no data.tar member")
	}
	return pkg, nil
}

// decompress picks the decompressor from a member name's suffix.
func decompress(member string, r io.Reader) (io.Reader, func(), error) {
	noop := func() {}
	switch path.Ext(member) {
	case ".tar":
		return r, noop, nil
	case ".gz":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case ".xz":
		z, err := xz.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, nil, err
		}
		return z, noop, nil
	case ".zst":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	case ".bz2":
		return bzip2.NewReader(r), noop, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression %q", path.Ext(member))
}

func readControlTar(member string, r io.Reader) (Control, error) {
	dr, closeFn, err := decompress(member, r)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	tr := tar.NewReader(dr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no control file")
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "./") != "control" || h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxControlBytes+1))
		if err != nil {
			return nil, err
		}
		if len(data) > maxControlBytes {
			return nil, errors.New("control file too large")
		}
		return ParseControl(bytes.NewReader(data))
	}
}

// extractor writes the kept files of a data archive below dest.
type extractor struct {
	dest    string
	keep    func(name string) bool
	written int64
}

// entryName validates a tar entry's name and returns it relative, slash-separated.
func entryName(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("entry %q: absolute path", raw)
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q: path escapes the extraction root", raw)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	return name, nil
}

func (x *extractor) extract(ctx context.Context, member string, r io.Reader, pkg *Package) error {
	dr, closeFn, err := decompress(member, r)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(dr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		if name == "" || (x.keep != nil && !x.keep(name)) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(x.target(name), 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := x.writeFile(name, h, tr); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			pkg.Files = append(pkg.Files, name)
		default:
			pkg.Skipped = append(pkg.Skipped, name)
		}
	}
}

func (x *extractor) target(name string) string {
	return filepath.Join(x.dest, filepath.FromSlash(name))
}

func (x *extractor) writeFile(name string, h *tar.Header, r io.Reader) error {
	if h.Size < 0 || x.written+h.Size > MaxExtractBytes {
		return fmt.Errorf("extraction exceeds %d bytes", int64(MaxExtractBytes))
	}
	target := x.target(name)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if h.Mode&0o111 != 0 {
		mode = 0o755
	}
	// O_EXCL|O_NOFOLLOW: the destination started empty and no links are ever
	// created in it, so an existing file here means a duplicate entry.
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, h.Size))
	x.written += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != h.Size {
		err = io.ErrUnexpectedEOF
	}
	return err
}
