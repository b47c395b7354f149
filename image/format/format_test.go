package format

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/internal/testbundle"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// qemuFormat is QEMU's name for what each of our formats holds; gce and
// ova are archives, checked through what they contain.
var qemuFormat = map[string]string{
	"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vmdk-sparse": "vmdk", "vhd": "vpc", "vhdx": "vhdx",
}

// qemuChecks are the formats qemu-img check can check.
var qemuChecks = map[string]bool{"qcow2": true, "vmdk": true, "vmdk-sparse": true, "vhdx": true}

// testDisk writes a real disk.img with image/disk (GPT, hybrid MBR, GRUB,
// FAT ESP, rootfs partition and a 64 MiB data partition left as a hole)
// from made-up kernel, initrd and rootfs contents: random (incompressible,
// as compressed images are) with compressible and zero stretches.
func testDisk(t testing.TB) string {
	t.Helper()
	b := testbundle.Bundle(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(name string, size int, head []byte) {
		buf := make([]byte, size)
		for i := range buf {
			switch {
			case i%(1<<20) < 300<<10: // random
				buf[i] = byte(r.Uint32())
			case i%(1<<20) < 600<<10: // text-like
				buf[i] = "unikernel disk formats "[i%23]
			} // the rest of each MiB stays zero
		}
		copy(buf, head)
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("kernel", 3<<20, testbundle.BzImage(testbundle.Release))
	mk("initrd", 1<<20+12345, nil)
	mk("rootfs.img", 5<<20, nil)
	if err := image.WriteDisk(context.Background(), dir, b, "console=ttyS0 panic=-1", 64<<20, 1700000000); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "disk.img")
}

func convert(t testing.TB, name, disk, dst string, o Options) {
	t.Helper()
	f, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ConvertFile(context.Background(), disk, dst, o); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func qemuImg(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkAgainstRaw runs qemu-img check (where the format has one) and
// qemu-img compare against the raw disk, which also proves the virtual
// sizes match (strict mode).
func checkAgainstRaw(t *testing.T, disk, out, qfmt string, check bool) {
	t.Helper()
	if check {
		if s := qemuImg(t, "check", "-f", qfmt, out); !strings.Contains(s, "No errors were found") {
			t.Errorf("qemu-img check %s: %s", out, s)
		}
	}
	qemuImg(t, "compare", "-f", "raw", "-F", qfmt, disk, out)
}

func TestFormatsTable(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("format names not sorted and unique: %v", names)
	}
	for _, f := range Formats() {
		if f.Description == "" || !strings.HasPrefix(f.Ext, ".") || f.write == nil {
			t.Errorf("format %s: incomplete row %+v", f.Name, f)
		}
	}
	if _, err := Lookup("vdi"); err == nil || !strings.Contains(err.Error(), "qcow2") {
		t.Errorf("Lookup(vdi) = %v, want an error listing the formats", err)
	}
	f, _ := Lookup("raw")
	err := f.Write(context.Background(), Source{R: bytes.NewReader(nil), Size: 1000}, filepath.Join(t.TempDir(), "x"), Options{})
	if err == nil || !strings.Contains(err.Error(), "512") {
		t.Errorf("a size that is no multiple of 512: %v", err)
	}
	err = f.Write(context.Background(), Source{R: bytes.NewReader(make([]byte, 512)), Size: 512}, filepath.Join(t.TempDir(), "x"), Options{Compress: true})
	if err == nil {
		t.Error("raw accepted Compress")
	}
}

// TestConvertQemuImg converts a real disk.img into every format and checks
// each with qemu-img, the oracle.
func TestConvertQemuImg(t *testing.T) {
	testtool.Need(t, "qemu-img")
	disk := testDisk(t)
	dir := t.TempDir()
	for _, f := range Formats() {
		t.Run(f.Name, func(t *testing.T) {
			out := filepath.Join(dir, "disk"+f.Ext)
			convert(t, f.Name, disk, out, Options{SourceDateEpoch: 1700000000})
			switch f.Name {
			case "gce":
				checkGCE(t, disk, out)
			case "ova":
				checkOVA(t, disk, out)
			default:
				checkAgainstRaw(t, disk, out, qemuFormat[f.Name], qemuChecks[f.Name])
			}
		})
	}
	t.Run("qcow2-compressed", func(t *testing.T) {
		out := filepath.Join(dir, "c.qcow2")
		convert(t, "qcow2", disk, out, Options{Compress: true})
		checkAgainstRaw(t, disk, out, "qcow2", true)
		info := qemuImg(t, "check", out)
		if !strings.Contains(info, "compressed clusters") || strings.Contains(info, " 0.00% compressed") {
			t.Errorf("no compressed clusters: %s", info)
		}
	})
	t.Run("vhd-size", func(t *testing.T) {
		// The virtual size is a whole MiB, and the file is that plus the footer.
		st, err := os.Stat(filepath.Join(dir, "disk.vhd"))
		if err != nil {
			t.Fatal(err)
		}
		if (st.Size()-512)%(1<<20) != 0 {
			t.Errorf("vhd file size %d is not a MiB multiple plus 512", st.Size())
		}
	})
}

// TestVHDMatchesQemu compares our fixed VHD with qemu-img's
// (subformat=fixed,force_size=on, what Azure's docs prescribe) byte for
// byte, except the footer's timestamp, creator, checksum and UUID.
func TestVHDMatchesQemu(t *testing.T) {
	testtool.Need(t, "qemu-img")
	disk := testDisk(t)
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "ours.vhd"), filepath.Join(dir, "qemu.vhd")
	convert(t, "vhd", disk, ours, Options{})
	qemuImg(t, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", disk, theirs)
	a, err := os.ReadFile(ours)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("sizes: ours %d, qemu-img %d", len(a), len(b))
	}
	n := len(a) - 512
	if !bytes.Equal(a[:n], b[:n]) {
		t.Fatal("data differs from qemu-img's")
	}
	fa, fb := slices.Clone(a[n:]), slices.Clone(b[n:])
	for _, r := range [][2]int{{24, 36}, {64, 84}} { // timestamp, creator; checksum and uuid
		clear(fa[r[0]:r[1]])
		clear(fb[r[0]:r[1]])
	}
	if !bytes.Equal(fa, fb) {
		t.Errorf("footer differs from qemu-img's beyond timestamp, creator, checksum and uuid:\nours %x\nqemu %x", fa[:96], fb[:96])
	}
}

func checkGCE(t *testing.T, disk, out string) {
	t.Helper()
	// GNU tar, as Google's importer would, restores the sparse file.
	testtool.Need(t, "tar")
	x := t.TempDir()
	if b, err := exec.Command("tar", "-C", x, "-xzf", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, b)
	}
	if b, _ := exec.Command("tar", "-tvzf", out).CombinedOutput(); !strings.Contains(string(b), "disk.raw") {
		t.Errorf("tar -t: %s", b)
	}
	raw := filepath.Join(x, "disk.raw")
	st, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%(1<<30) != 0 {
		t.Errorf("disk.raw is %d bytes, not a whole GiB", st.Size())
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 64<<20 {
		t.Errorf("disk.raw extracted with %d bytes allocated: the sparse map was lost", used)
	}
	// The extra size is zeros (compare without -s allows that).
	qemuImg(t, "compare", "-f", "raw", "-F", "raw", disk, raw)
	// Go's reader agrees, and sees an oldgnu sparse entry.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "disk.raw" || h.Format != tar.FormatGNU || h.Size != st.Size() {
		t.Errorf("entry %q format %v size %d", h.Name, h.Format, h.Size)
	}
	want, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(tr, got); err != nil || !bytes.Equal(got, want) {
		t.Errorf("Go's tar reader: %v, equal %v", err, bytes.Equal(got, want))
	}
}

func checkOVA(t *testing.T, disk, out string) {
	t.Helper()
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	x := t.TempDir()
	var names []string
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Format != tar.FormatUSTAR && !(h.Format == tar.FormatUnknown) {
			// archive/tar reports ustar headers as USTAR|PAX|GNU-compatible.
			if h.Format&tar.FormatUSTAR == 0 {
				t.Errorf("%s: tar format %v, OVF wants ustar", h.Name, h.Format)
			}
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		files[h.Name] = b
		if err := os.WriteFile(filepath.Join(x, h.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"disk.ovf", "disk-disk1.vmdk", "disk.mf"}; !slices.Equal(names, want) {
		t.Fatalf("ova holds %v, want %v in that order", names, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(files["disk.mf"])), "\n") {
		var name, sum string
		if n, _ := strings.CutPrefix(line, "SHA256("); n != line {
			name, sum, _ = strings.Cut(n, ")= ")
		}
		got := sha256.Sum256(files[name])
		if files[name] == nil || sum != hex.EncodeToString(got[:]) {
			t.Errorf("manifest line %q does not match %s", line, name)
		}
	}
	var env struct {
		File []struct {
			Href string `xml:"href,attr"`
			Size int64  `xml:"size,attr"`
		} `xml:"References>File"`
		Disk []struct {
			Capacity int64  `xml:"capacity,attr"`
			Format   string `xml:"format,attr"`
		} `xml:"DiskSection>Disk"`
	}
	if err := xml.Unmarshal(files["disk.ovf"], &env); err != nil {
		t.Fatalf("disk.ovf: %v", err)
	}
	st, _ := os.Stat(disk)
	if len(env.File) != 1 || env.File[0].Href != "disk-disk1.vmdk" || env.File[0].Size != int64(len(files["disk-disk1.vmdk"])) ||
		len(env.Disk) != 1 || env.Disk[0].Capacity != st.Size() || !strings.HasSuffix(env.Disk[0].Format, "#streamOptimized") {
		t.Errorf("ovf references %+v disks %+v", env.File, env.Disk)
	}
	checkAgainstRaw(t, disk, filepath.Join(x, "disk-disk1.vmdk"), "vmdk", true)
}

// TestReproducible converts twice, into different directories, and wants
// the same bytes.
func TestReproducible(t *testing.T) {
	disk := testDisk(t)
	a, b := t.TempDir(), t.TempDir()
	for _, f := range Formats() {
		for _, c := range []bool{false, true} {
			if c && f.Compression != CompressOptional {
				continue
			}
			o := Options{Compress: c, SourceDateEpoch: 1234567890}
			convert(t, f.Name, disk, filepath.Join(a, "disk"+f.Ext), o)
			convert(t, f.Name, disk, filepath.Join(b, "disk"+f.Ext), o)
			x, _ := os.ReadFile(filepath.Join(a, "disk"+f.Ext))
			y, _ := os.ReadFile(filepath.Join(b, "disk"+f.Ext))
			if len(x) == 0 || !bytes.Equal(x, y) {
				t.Errorf("%s (compress %v): two conversions differ (%d and %d bytes)", f.Name, c, len(x), len(y))
			}
		}
	}
}

// TestSparseStaysSmall converts a 4 GiB disk that holds 3 MiB of data and
// wants every output small: no zero block stored.
func TestSparseStaysSmall(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "sparse.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("not zero"), 1<<17) // 1 MiB
	for _, off := range []int64{0, 1 << 31, 4<<30 - 1<<20} {
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	for _, fm := range Formats() {
		out := filepath.Join(dir, "out"+fm.Ext)
		convert(t, fm.Name, disk, out, Options{})
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		used := st.Sys().(*syscall.Stat_t).Blocks * 512
		// 3 MiB of data, metadata (VHDX reserves 4 MiB up front), and
		// file system slack.
		if used > 12<<20 {
			t.Errorf("%s: %d bytes allocated for 3 MiB of data", fm.Name, used)
		}
		if _, err := exec.LookPath("qemu-img"); err == nil && qemuFormat[fm.Name] != "" {
			qemuImg(t, "compare", "-f", "raw", "-F", qemuFormat[fm.Name], disk, out)
		}
		os.Remove(out)
	}
}

// endless is a disk of non-zero bytes, as large as asked, that costs
// nothing to read: long enough to cancel a conversion in the middle.
type endless struct{}

func (endless) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = byte(off+int64(i)) | 1
	}
	return len(p), nil
}

// TestCancelLeavesNothing cancels every conversion of a 64 GiB disk after
// 300 ms: it must stop within a second, return context.Canceled and leave
// the directory empty.
func TestCancelLeavesNothing(t *testing.T) {
	for _, fm := range Formats() {
		t.Run(fm.Name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := fm.Write(ctx, Source{R: endless{}, Size: 64 << 30}, filepath.Join(dir, "out"+fm.Ext), Options{Compress: fm.Compression == CompressOptional})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want the context's", err)
			}
			if d := time.Since(start); d > 1300*time.Millisecond {
				t.Errorf("stopped after %v", d)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left %v", left)
			}
		})
	}
}
