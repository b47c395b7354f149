package squashfs

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"golang.org/x/sys/unix"
)

const testModTime = 1700000000 // 2023-11-14 22:13:20 UTC

func needUnsquashfs(t *testing.T) {
	t.Helper()
	testtool.Need(t, "unsquashfs")
}

// content returns n bytes that compress somewhat, different for every seed.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	words := []string{"alpha ", "beta ", "gamma ", "delta\n", "import os\n", "def f(x):\n"}
	var b bytes.Buffer
	for b.Len() < n {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(r.Uint32()))
		} else {
			b.WriteString(words[r.IntN(len(words))])
		}
	}
	return b.Bytes()[:n]
}

func writeHostFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testTree builds a host directory with the shapes that matter and adds
// hand-made entries that a non-root test cannot create on the host.
func testTree(t *testing.T) *rootfs.Tree {
	t.Helper()
	dir := t.TempDir()
	bs := DefaultBlockSize
	for i := range 300 {
		writeHostFile(t, filepath.Join(dir, "small", fmt.Sprintf("f%03d.txt", i)), content(uint64(i), 10+i*37))
	}
	writeHostFile(t, filepath.Join(dir, "small", "dup-of-f007.txt"), content(7, 10+7*37))
	writeHostFile(t, filepath.Join(dir, "blocks", "exact"), content(1000, 2*bs))
	writeHostFile(t, filepath.Join(dir, "blocks", "several"), content(1001, 5*bs+1234))
	writeHostFile(t, filepath.Join(dir, "blocks", "several-copy"), content(1001, 5*bs+1234))
	zeroMiddle := content(1002, 3*bs+5)
	clear(zeroMiddle[bs : 2*bs])
	writeHostFile(t, filepath.Join(dir, "blocks", "zero-middle"), zeroMiddle)
	writeHostFile(t, filepath.Join(dir, "blocks", "random"), randomBytes(1003, bs+77))
	writeHostFile(t, filepath.Join(dir, "empty"), nil)
	deep := filepath.Join(dir, "deep")
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("level%02d", i))
	}
	writeHostFile(t, filepath.Join(deep, "bottom"), []byte("deep\n"))
	for i := range 1000 {
		name := fmt.Sprintf("entry-with-a-fairly-long-name-so-the-listing-spans-blocks-%04d", i)
		writeHostFile(t, filepath.Join(dir, "wide", name), []byte(name))
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"link-rel": "small/f001.txt", "link-abs": "/blocks/exact", "link-dangling": "../nowhere"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	tree := rootfs.NewTree()
	if err := tree.AddHostDir(dir, "/"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []rootfs.Entry{
		{Path: "/modes/setuid", Mode: 0o755 | fs.ModeSetuid, UID: 0, GID: 0, Data: []byte("su")},
		{Path: "/modes/setgid", Mode: 0o2711&0o777 | fs.ModeSetgid, UID: 1000, GID: 50, Data: []byte("sg")},
		{Path: "/modes/sticky", Mode: fs.ModeDir | 0o777 | fs.ModeSticky, UID: 0, GID: 0},
		{Path: "/modes/owned", Mode: 0o600, UID: 65534, GID: 4242, Data: []byte("owned")},
		{Path: "/modes/dir-owned", Mode: fs.ModeDir | 0o750, UID: 123, GID: 456},
		{Path: "/dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: unix.Mkdev(1, 3)},
		{Path: "/dev/sda", Mode: fs.ModeDevice | 0o660, GID: 6, Rdev: unix.Mkdev(8, 0)},
		{Path: "/dev/big", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Rdev: unix.Mkdev(300, 200)},
		{Path: "/dev/fifo", Mode: fs.ModeNamedPipe | 0o644},
		{Path: "/dev/sock", Mode: fs.ModeSocket | 0o755},
	} {
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeImage(t *testing.T, tree *rootfs.Tree, opts ...Option) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "rootfs.img")
	if err := WriteFile(context.Background(), img, tree, opts...); err != nil {
		t.Fatal(err)
	}
	return img
}

func unsquashfs(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("unsquashfs", args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lsMode renders a mode as ls and unsquashfs do.
func lsMode(m fs.FileMode) string {
	typ := "-"
	switch {
	case m.IsDir():
		typ = "d"
	case m&fs.ModeSymlink != 0:
		typ = "l"
	case m&fs.ModeCharDevice != 0:
		typ = "c"
	case m&fs.ModeDevice != 0:
		typ = "b"
	case m&fs.ModeNamedPipe != 0:
		typ = "p"
	case m&fs.ModeSocket != 0:
		typ = "s"
	}
	b := []byte(typ + "rwxrwxrwx")
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(pos int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[pos] == 'x' {
			b[pos] = lower
		} else {
			b[pos] = upper
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

// expectedListing is what `unsquashfs -lln` must print for tree, one line
// per entry with runs of spaces collapsed; directory sizes are left out
// since only the writer knows them.
func expectedListing(t *testing.T, tree *rootfs.Tree) map[string]string {
	want := map[string]string{}
	tree.Walk(func(e *rootfs.Entry) error {
		name := "squashfs-root" + strings.TrimSuffix(e.Path, "/")
		if e.Path == "/" {
			name = "squashfs-root"
		}
		size := fmt.Sprint(e.Size)
		switch {
		case e.IsDir():
			size = "DIR"
		case e.IsSymlink():
			size = fmt.Sprint(len(e.Link))
			name += " -> " + e.Link
		case e.Mode&fs.ModeDevice != 0:
			size = fmt.Sprintf("%d,%d", unix.Major(e.Rdev), unix.Minor(e.Rdev))
		case !e.IsRegular():
			size = "0"
		}
		want[name] = fmt.Sprintf("%s %d/%d %s 2023-11-14 22:13 %s", lsMode(e.Mode), e.UID, e.GID, size, name)
		return nil
	})
	return want
}

var commaSpaces = regexp.MustCompile(`,\s+`)

// parseListing reads `unsquashfs -lln` output into the form of
// expectedListing: mode, uid/gid, size (DIR for directories, "maj,min"
// for devices), date, time, name.
func parseListing(out string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, " squashfs-root")
		if i < 0 {
			continue
		}
		name := line[i+1:]
		f := strings.Fields(commaSpaces.ReplaceAllString(line[:i], ","))
		if len(f) != 5 {
			continue
		}
		if f[0][0] == 'd' {
			f[2] = "DIR"
		}
		got[name] = strings.Join(append(f, name), " ")
	}
	return got
}

func TestListingMatchesTree(t *testing.T) {
	needUnsquashfs(t)
	tree := testTree(t)
	img := writeImage(t, tree, WithModTime(testModTime))
	got := parseListing(unsquashfs(t, "-lln", img))
	want := expectedListing(t, tree)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("listing of %s:\n got %q\nwant %q", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("unsquashfs lists %d entries, the tree has %d", len(got), len(want))
	}

	ids := map[uint32]bool{}
	tree.Walk(func(e *rootfs.Entry) error {
		ids[e.UID], ids[e.GID] = true, true
		return nil
	})
	stats := unsquashfs(t, "-s", img)
	for _, s := range []string{
		"Compression zstd", fmt.Sprintf("Block size %d", DefaultBlockSize), "Creation or last append time Tue Nov 14 22:13:20 2023",
		fmt.Sprintf("Number of inodes %d", tree.Len()), fmt.Sprintf("Number of ids %d", len(ids)),
	} {
		if !strings.Contains(stats, s) {
			t.Errorf("unsquashfs -s lacks %q:\n%s", s, stats)
		}
	}
}

func TestExtractedBytesMatch(t *testing.T) {
	for _, bs := range []int{DefaultBlockSize, 4096} {
		t.Run(fmt.Sprint("block size ", bs), func(t *testing.T) { testExtractedBytesMatch(t, bs) })
	}
}

func testExtractedBytesMatch(t *testing.T, blockSize int) {
	needUnsquashfs(t)
	tree := testTree(t)
	img := writeImage(t, tree, WithBlockSize(blockSize))
	out := filepath.Join(t.TempDir(), "x")
	unsquashfs(t, "-no-xattrs", "-d", out, img)
	checked := 0
	tree.Walk(func(e *rootfs.Entry) error {
		p := filepath.Join(out, filepath.FromSlash(e.Path))
		switch {
		case e.IsRegular():
			r, err := e.Open()
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			want.ReadFrom(r)
			r.Close()
			got, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", e.Path, err)
			} else if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s: extracted %d bytes differ from the %d written", e.Path, len(got), want.Len())
			}
			checked++
		case e.IsSymlink():
			got, err := os.Readlink(p)
			if err != nil || got != e.Link {
				t.Errorf("%s: link %q, %v; want %q", e.Path, got, err, e.Link)
			}
		}
		return nil
	})
	if checked < 1300 {
		t.Errorf("checked only %d files", checked)
	}
}

func TestSameInputSameBytes(t *testing.T) {
	tree := testTree(t)
	a, err := os.ReadFile(writeImage(t, tree, WithWorkers(1)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeImage(t, tree, WithWorkers(4)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two writes of one tree differ (%d and %d bytes)", len(a), len(b))
	}
	if len(a)%4096 != 0 {
		t.Errorf("image size %d is not a multiple of 4096", len(a))
	}
}

func TestDuplicatesStoredOnce(t *testing.T) {
	one := rootfs.NewTree()
	two := rootfs.NewTree()
	data := randomBytes(9, 1<<20+999)
	one.Add(rootfs.Entry{Path: "/a", Mode: 0o644, Data: data})
	two.Add(rootfs.Entry{Path: "/a", Mode: 0o644, Data: data})
	two.Add(rootfs.Entry{Path: "/b/copy", Mode: 0o644, Data: bytes.Clone(data)})
	a, _ := os.Stat(writeImage(t, one))
	b, _ := os.Stat(writeImage(t, two))
	if b.Size() > a.Size()+4096 {
		t.Errorf("a second copy of a %d byte file grew the image from %d to %d bytes", len(data), a.Size(), b.Size())
	}
}

// The kernel decodes device numbers with new_decode_dev; unsquashfs -lln
// prints only 8 bits of minor, so large numbers are checked here.
func TestEncodeDevAsKernelDecodes(t *testing.T) {
	for _, d := range [][2]uint32{{1, 3}, {8, 0}, {300, 200}, {259, 70000}, {4095, 0xfffff}} {
		dev := encodeDev(d[0], d[1])
		major := (dev & 0xfff00) >> 8
		minor := dev&0xff | (dev>>12)&0xfff00
		if major != d[0] || minor != d[1] {
			t.Errorf("encodeDev(%d, %d) = %#x, which the kernel reads as %d, %d", d[0], d[1], dev, major, minor)
		}
	}
}
