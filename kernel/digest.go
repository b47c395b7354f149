package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
)

// Digest returns "sha256:<hex>" of the canonical serialisation of the
// bundle files in dir, bundle.json excepted (it carries the digest). The
// serialisation is one line per regular file, sorted by slash path:
//
//	<sha256 hex of contents> <mode: 644 or 755> <size> <len(path)>:<path>\n
//
// Modes are reduced to executable or not, so a umask does not change the
// digest; directories are implied by the paths. Anything but regular files
// and directories is an error, since a bundle holds nothing else.
func Digest(dir string) (string, error) {
	return digest(context.Background(), dir)
}

// digest is Digest, stopping when ctx is done.
func digest(ctx context.Context, dir string) (string, error) {
	type file struct {
		rel  string
		mode fs.FileMode
		size int64
	}
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case rel == DescriptorFile:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("kernel bundle %s: %s is not a regular file", dir, rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if info.Mode()&0o100 != 0 {
			mode = 0o755
		}
		files = append(files, file{rel: rel, mode: mode, size: info.Size()})
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	manifest := sha256.New()
	for _, f := range files {
		sum, err := fileSHA256(ctx, filepath.Join(dir, filepath.FromSlash(f.rel)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(manifest, "%s %o %d %d:%s\n", sum, f.mode, f.size, len(f.rel), f.rel)
	}
	return "sha256:" + hex.EncodeToString(manifest.Sum(nil)), nil
}

func fileSHA256(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.Reader(ctx, f)); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
