package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// A file over 4 GiB needs the extended file inode (64-bit size). The host
// file is sparse, so the test costs reading zeroes, not disk space.
func TestFileOver4GiB(t *testing.T) {
	needUnsquashfs(t)
	testtool.Slow(t, "reads 4.5 GiB")
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4<<30 + 512<<20 + 12345
	for _, off := range []int64{0, 1 << 30, 4<<30 + 7, size - 100} {
		if _, err := f.WriteAt(content(uint64(off), 100), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	want := fileSHA(t, big)

	tree := rootfs.NewTree()
	if err := tree.AddHostDir(dir, "/"); err != nil {
		t.Fatal(err)
	}
	img := writeImage(t, tree)
	if fi, _ := os.Stat(img); fi.Size() > 1<<20 {
		t.Errorf("image of a mostly sparse file is %d bytes", fi.Size())
	}
	if out := unsquashfs(t, "-lln", img); !strings.Contains(out, fmt.Sprintf(" %d ", int64(size))) {
		t.Errorf("listing lacks the size %d:\n%s", int64(size), out)
	}
	cmd := exec.Command("unsquashfs", "-cat", img, "big")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("unsquashfs -cat: %v", err)
	}
	if n != size || string(h.Sum(nil)) != string(want) {
		t.Errorf("unsquashfs -cat gave %d bytes that differ from the %d written", n, int64(size))
	}
}

func fileSHA(t *testing.T, p string) []byte {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

func TestBadInputIsRefused(t *testing.T) {
	long := strings.Repeat("n", 300)
	for name, tc := range map[string]struct {
		entry rootfs.Entry
		opts  []Option
		want  string
	}{
		"long name":         {rootfs.Entry{Path: "/d/" + long, Mode: 0o644}, nil, "/d/" + long},
		"irregular":         {rootfs.Entry{Path: "/odd", Mode: fs.ModeIrregular}, nil, "/odd: unsupported file type"},
		"empty link":        {rootfs.Entry{Path: "/l", Mode: fs.ModeSymlink | 0o777}, nil, "/l: symlink target"},
		"block size":        {rootfs.Entry{Path: "/f", Mode: 0o644}, []Option{WithBlockSize(3000)}, "block size 3000"},
		"mtime":             {rootfs.Entry{Path: "/f", Mode: 0o644}, []Option{WithModTime(-1)}, "modification time -1"},
		"compression level": {rootfs.Entry{Path: "/f", Mode: 0o644}, []Option{WithCompressionLevel(40)}, "zstd level 40"},
	} {
		t.Run(name, func(t *testing.T) {
			tree := rootfs.NewTree()
			if err := tree.Add(tc.entry); err != nil {
				// rootfs refuses such a name before any writer can see it.
				if !errors.Is(err, rootfs.ErrInvalidPath) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("tree.Add: %v, want an invalid path error naming %q", err, tc.want)
				}
				return
			}
			img := filepath.Join(t.TempDir(), "rootfs.img")
			err := WriteFile(context.Background(), img, tree, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
			assertNothingLeft(t, filepath.Dir(img))
		})
	}
}

// A file that changes between building the tree and writing the image
// fails the write, names the file, and leaves no image behind.
func TestChangedFileFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a": "short", "b": strings.Repeat("x", 3*4096+5)} {
		writeHostFile(t, filepath.Join(dir, "src", name), []byte(data))
	}
	tree := rootfs.NewTree()
	if err := tree.AddHostDir(filepath.Join(dir, "src"), "/"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	for name, change := range map[string]func(p string) error{
		"grown":  func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("y", 3*4096+6)), 0o644) },
		"shrunk": func(p string) error { return os.Truncate(p, 10) },
		"gone":   os.Remove,
	} {
		t.Run(name, func(t *testing.T) {
			writeHostFile(t, filepath.Join(dir, "src", "b"), []byte(strings.Repeat("x", 3*4096+5)))
			if err := change(filepath.Join(dir, "src", "b")); err != nil {
				t.Fatal(err)
			}
			err := WriteFile(context.Background(), filepath.Join(out, "rootfs.img"), tree, WithBlockSize(4096))
			if err == nil || !strings.Contains(err.Error(), "/b") {
				t.Fatalf("error %v, want one naming /b", err)
			}
			if errors.Is(err, fs.ErrNotExist) != (name == "gone") {
				t.Errorf("error %v: ErrNotExist only when the file is gone", err)
			}
			assertNothingLeft(t, out)
		})
	}
}

func assertNothingLeft(t *testing.T, dir string) {
	t.Helper()
	left, _ := os.ReadDir(dir)
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}

// Write starts at the writer's offset (an image inside a disk partition),
// leaves what precedes it alone and ends at the image's end; a tree with
// only its root is a valid image.
func TestWriteAtOffsetAndRootOnly(t *testing.T) {
	needUnsquashfs(t)
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prefix := content(5, 8192)
	f.Write(prefix)
	tree := rootfs.NewTree()
	if err := tree.Add(rootfs.Entry{Path: "/", Mode: fs.ModeDir | 0o700, UID: 7, GID: 8}); err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), f, tree); err != nil {
		t.Fatal(err)
	}
	end, _ := f.Seek(0, io.SeekCurrent)
	disk, _ := os.ReadFile(f.Name())
	if int64(len(disk)) != end || (end-8192)%4096 != 0 {
		t.Errorf("Write left the file at %d of %d bytes", end, len(disk))
	}
	if !bytes.Equal(disk[:8192], prefix) {
		t.Error("Write changed the bytes before its offset")
	}
	img := filepath.Join(dir, "img")
	os.WriteFile(img, disk[8192:], 0o644)
	got := parseListing(unsquashfs(t, "-lln", img))
	want := "drwx------ 7/8 DIR 1970-01-01 00:00 squashfs-root"
	if len(got) != 1 || got["squashfs-root"] != want {
		t.Errorf("listing %v, want only %q", got, want)
	}
}
