package initrd

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// sampleTree holds every kind of entry the writer stores.
func sampleTree(t *testing.T) *rootfs.Tree {
	t.Helper()
	hostFile := filepath.Join(t.TempDir(), "big")
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	big = append(big, 'x', 'y', 'z') // a size that is not a multiple of four
	if err := os.WriteFile(hostFile, big, 0o644); err != nil {
		t.Fatal(err)
	}
	tr := rootfs.NewTree()
	add := func(e rootfs.Entry) {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	add(rootfs.Entry{Path: "/init", Mode: 0o755, Data: []byte("#!init\n")})
	add(rootfs.Entry{Path: "/uni/init.json", Mode: 0o644, Data: []byte(`{"args":["/app"]}`)})
	add(rootfs.Entry{Path: "/lib/modules/6.1/kernel/big.ko", Mode: 0o644, HostPath: hostFile, Size: int64(len(big))})
	add(rootfs.Entry{Path: "/lib/modules/6.1/kernel/empty", Mode: 0o600})
	add(rootfs.Entry{Path: "/lib/link", Mode: fs.ModeSymlink | 0o777, Link: "modules/6.1"})
	add(rootfs.Entry{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777})
	add(rootfs.Entry{Path: "/newroot", Mode: fs.ModeDir | 0o755})
	return tr
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	testtool.Need(t, name)
}

func writeArchive(t *testing.T, tr *rootfs.Tree, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, tr, opts...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCpioListsEveryEntryInOrder(t *testing.T) {
	requireTool(t, "cpio")
	raw := writeArchive(t, sampleTree(t), WithCompression(None))
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	got := strings.Fields(string(out))
	want := []string{"init", "lib", "lib/link", "lib/modules", "lib/modules/6.1",
		"lib/modules/6.1/kernel", "lib/modules/6.1/kernel/big.ko", "lib/modules/6.1/kernel/empty",
		"newroot", "tmp", "uni", "uni/init.json"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("cpio -it listed\n%q\nwant\n%q", got, want)
	}
}

func TestCpioExtractsSameContent(t *testing.T) {
	requireTool(t, "cpio")
	tr := sampleTree(t)
	raw := writeArchive(t, tr, WithCompression(None), WithModTime(1700000000))
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -idm: %v\n%s", err, out)
	}
	err := tr.Walk(func(e *rootfs.Entry) error {
		if e.Path == "/" {
			return nil
		}
		p := filepath.Join(dir, e.Path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: not extracted: %v", e.Path, err)
			return nil
		}
		if fi.Mode() != e.Mode {
			t.Errorf("%s: mode %v, want %v", e.Path, fi.Mode(), e.Mode)
		}
		if e.IsRegular() && fi.ModTime().Unix() != 1700000000 { // cpio sets no mtime on dirs and links
			t.Errorf("%s: mtime %d, want 1700000000", e.Path, fi.ModTime().Unix())
		}
		switch {
		case e.IsRegular():
			got, _ := os.ReadFile(p)
			r, _ := e.Open()
			want, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes extracted differ from the %d in the tree", e.Path, len(got), len(want))
			}
		case e.IsSymlink():
			if l, _ := os.Readlink(p); l != e.Link {
				t.Errorf("%s: link %q, want %q", e.Path, l, e.Link)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHeaders checks what cpio's listing does not show: inode order, link
// counts and the trailer.
func TestHeaders(t *testing.T) {
	tree := sampleTree(t)
	if err := tree.Add(rootfs.Entry{Path: "/dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Rdev: 5<<8 | 1}); err != nil {
		t.Fatal(err)
	}
	raw := writeArchive(t, tree, WithCompression(None))
	type rec struct {
		name        string
		ino, nlink  uint64
		mode, mtime uint64
	}
	var recs []rec
	for off := 0; off < len(raw); {
		h := string(raw[off : off+110])
		if h[:6] != newcMagic {
			t.Fatalf("bad magic at %d: %q", off, h[:6])
		}
		field := func(i int) uint64 {
			var v uint64
			for _, c := range h[6+8*i : 14+8*i] {
				v = v*16 + uint64(strings.IndexRune("0123456789abcdef", c))
			}
			return v
		}
		nameLen, size := int(field(11)), int(field(6))
		name := string(raw[off+110 : off+110+nameLen-1])
		recs = append(recs, rec{name, field(0), field(4), field(1), field(5)})
		off = (off + 110 + nameLen + 3) &^ 3
		off = (off + size + 3) &^ 3
		if name == trailerName {
			if off != len(raw) {
				t.Fatalf("%d bytes after the trailer", len(raw)-off)
			}
			break
		}
	}
	for i, r := range recs[:len(recs)-1] {
		if r.ino != uint64(i+1) {
			t.Errorf("%s: inode %d, want %d", r.name, r.ino, i+1)
		}
	}
	links := map[string]uint64{"lib": 3, "lib/modules": 3, "lib/modules/6.1/kernel": 2, "init": 1, "tmp": 2, "dev/console": 1}
	for _, r := range recs {
		if want, ok := links[r.name]; ok && r.nlink != want {
			t.Errorf("%s: nlink %d, want %d", r.name, r.nlink, want)
		}
		if r.name == "tmp" && r.mode != 0o41777 {
			t.Errorf("tmp: mode %o, want 41777", r.mode)
		}
	}
	if last := recs[len(recs)-1]; last.name != trailerName {
		t.Fatalf("last record %q, want the trailer", last.name)
	}
}

func TestDeterministic(t *testing.T) {
	for _, c := range []Compression{Zstd, Gzip, None} {
		a := writeArchive(t, sampleTree(t), WithCompression(c), WithModTime(42))
		b := writeArchive(t, sampleTree(t), WithCompression(c), WithModTime(42))
		if !bytes.Equal(a, b) {
			t.Errorf("%v: two writes of the same tree differ", c)
		}
	}
}

// TestCompressedRoundTrip decompresses each format with an independent
// reader and checks it is the plain archive.
func TestCompressedRoundTrip(t *testing.T) {
	plain := writeArchive(t, sampleTree(t), WithCompression(None))
	gz, err := gzip.NewReader(bytes.NewReader(writeArchive(t, sampleTree(t), WithCompression(Gzip))))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(gz)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("gzip round trip differs (err %v)", err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(writeArchive(t, sampleTree(t))))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	got, err = io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("zstd round trip differs (err %v)", err)
	}
	if testtool.Need(t, "zstd") != nil {
		cmd := exec.Command("zstd", "-dc")
		cmd.Stdin = bytes.NewReader(writeArchive(t, sampleTree(t)))
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("zstd -dc round trip differs (err %v)", err)
		}
	}
}

func TestChangedFileIsAnError(t *testing.T) {
	tr := sampleTree(t)
	e, _ := tr.Get("/lib/modules/6.1/kernel/big.ko")
	e.Size += 10
	err := Write(context.Background(), io.Discard, tr)
	if err == nil || !strings.Contains(err.Error(), "big.ko") {
		t.Fatalf("want an error naming big.ko, got %v", err)
	}
}
