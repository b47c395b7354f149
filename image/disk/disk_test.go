package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func TestPartitionTableWithRealTools(t *testing.T) {
	needTool(t, "sfdisk", "sgdisk", "fdisk")
	dir := t.TempDir()
	in := fakeInputs(t, dir)
	img := filepath.Join(dir, "disk.img")
	if err := Write(context.Background(), img, in, WithModTime(1700000000)); err != nil {
		t.Fatal(err)
	}
	layout, err := Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != layout.Size() {
		t.Fatalf("disk is %d bytes, layout says %d", fi.Size(), layout.Size())
	}

	var table sfdiskTable
	if err := json.Unmarshal([]byte(run(t, dir, "sfdisk", "--json", img)), &table); err != nil {
		t.Fatal(err)
	}
	pt := table.PartitionTable
	if pt.Label != "gpt" || len(pt.Partitions) != 4 {
		t.Fatalf("sfdisk sees label %q with %d partitions, want gpt with 4", pt.Label, len(pt.Partitions))
	}
	wantTypes := []string{BIOSBootPartitionType, ESPPartitionType, RootfsPartitionType, DataPartitionType}
	for i, p := range pt.Partitions {
		lp := layout.Partitions[i]
		if p.Start != lp.FirstLBA || p.Size != lp.LastLBA-lp.FirstLBA+1 {
			t.Errorf("partition %d: sfdisk start %d size %d, layout %d..%d", i+1, p.Start, p.Size, lp.FirstLBA, lp.LastLBA)
		}
		if p.Start%2048 != 0 {
			t.Errorf("partition %d starts at LBA %d, not 1 MiB aligned", i+1, p.Start)
		}
		if !strings.EqualFold(p.Type, wantTypes[i]) {
			t.Errorf("partition %d type %s, want %s", i+1, p.Type, wantTypes[i])
		}
		if p.Name != lp.Name {
			t.Errorf("partition %d name %q, want %q", i+1, p.Name, lp.Name)
		}
	}
	if pt.Partitions[3].Size*512 != uint64(in.DataSize) {
		t.Errorf("data partition is %d bytes, asked for %d", pt.Partitions[3].Size*512, in.DataSize)
	}

	verify := run(t, dir, "sgdisk", "-v", img)
	if !strings.Contains(verify, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", verify)
	}
	// The hybrid MBR as a DOS-label reader sees it.
	dos := run(t, dir, "fdisk", "-l", "-t", "dos", "-o", "Device,Boot,Start,Sectors,Id", img)
	esp := layout.Partitions[ESPPartition-1]
	wantLines := []string{
		fmt.Sprintf("%s1 %d %d ee", img, 1, esp.FirstLBA-1),
		fmt.Sprintf("%s2 * %d %d ef", img, esp.FirstLBA, esp.LastLBA-esp.FirstLBA+1),
	}
	norm := strings.Join(strings.Fields(dos), " ")
	for _, w := range wantLines {
		if !strings.Contains(norm, w) {
			t.Errorf("fdisk -t dos lacks %q:\n%s", w, dos)
		}
	}

	// The rootfs is copied verbatim into partition 3.
	disk, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	rootfs, _ := os.ReadFile(in.Rootfs)
	root := layout.Partitions[RootfsPartition-1]
	if !bytes.Equal(disk[root.Offset():root.Offset()+int64(len(rootfs))], rootfs) {
		t.Error("partition 3 does not start with rootfs.img's bytes")
	}
	// core.img's first sector is where boot.img points, with its blocklist.
	coreLBA := uint64(layout.Partitions[0].FirstLBA)
	if got := le64(disk[0x5C:]); got != coreLBA {
		t.Errorf("boot.img kernel sector %d, want %d", got, coreLBA)
	}
	blk := disk[coreLBA*512+500 : coreLBA*512+512]
	core, _ := os.ReadFile(in.BIOSCoreImage)
	if le64(blk) != coreLBA+1 || int(le16(blk[8:])) != (len(core)+511)/512-1 || le16(blk[10:]) != 0x820 {
		t.Errorf("core.img blocklist %x: want start %d, %d sectors, segment 0x820", blk, coreLBA+1, (len(core)+511)/512-1)
	}
	if !bytes.Equal(disk[coreLBA*512+512:coreLBA*512+uint64(len(core))], core[512:]) {
		t.Error("core.img after its first sector is not copied verbatim")
	}

	// Sparse: the data partition and free ESP space were never written.
	if st := fi.Sys().(*syscall.Stat_t); st.Blocks*512 >= fi.Size() {
		t.Errorf("disk uses %d bytes on disk for %d: not sparse", st.Blocks*512, fi.Size())
	}
}

func TestESPWithMtoolsAndFsck(t *testing.T) {
	needTool(t, "mdir", "mtype", "mcopy", "fsck.fat")
	dir := t.TempDir()
	in := fakeInputs(t, dir)
	img := filepath.Join(dir, "disk.img")
	if err := Write(context.Background(), img, in, WithModTime(1700000000)); err != nil {
		t.Fatal(err)
	}
	checkESP(t, dir, img, in)
}

// TestFAT32ESP makes the ESP big enough to need FAT32, with a sparse
// 600 MB initrd so the test stays cheap on disk.
func TestFAT32ESP(t *testing.T) {
	needTool(t, "mdir", "mtype", "mcopy", "fsck.fat")
	dir := t.TempDir()
	in := fakeInputs(t, dir)
	f, err := os.OpenFile(in.Initrd, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(600 * mib); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("end of a big initrd"), 600*mib-19)
	f.Close()
	img := filepath.Join(dir, "disk.img")
	if err := Write(context.Background(), img, in); err != nil {
		t.Fatal(err)
	}
	layout, _ := Plan(in)
	if !layout.ESPFAT32 {
		t.Fatalf("ESP of %d bytes is not FAT32", layout.Partitions[ESPPartition-1].Size())
	}
	checkESP(t, dir, img, in)
}

func checkESP(t *testing.T, dir, img string, in Inputs) {
	t.Helper()
	layout, err := Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	esp := layout.Partitions[ESPPartition-1]
	at := fmt.Sprintf("%s@@%d", img, esp.Offset())
	listing := run(t, dir, "mdir", "-i", at, "-/", "-b", "::/")
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/uni/grub.cfg", "::/uni/kernel", "::/uni/initrd"} {
		if !strings.Contains(listing, want) {
			t.Errorf("ESP lacks %s; mdir says:\n%s", want, listing)
		}
	}
	cfg := run(t, dir, "mtype", "-i", at, "::/uni/grub.cfg")
	wantCfg := "set timeout=0\nlinux /uni/kernel"
	for _, w := range strings.Fields(in.Cmdline) {
		wantCfg += " '" + w + "'"
	}
	wantCfg += "\ninitrd /uni/initrd\nboot\n"
	if cfg != wantCfg {
		t.Errorf("grub.cfg is\n%q\nwant\n%q", cfg, wantCfg)
	}
	for esPath, src := range map[string]string{"::/uni/kernel": in.Kernel, "::/uni/initrd": in.Initrd, "::/EFI/BOOT/BOOTX64.EFI": in.EFIImage} {
		out := filepath.Join(dir, "copied")
		run(t, dir, "mcopy", "-o", "-i", at, esPath, out)
		if sumFile(t, out) != sumFile(t, src) {
			t.Errorf("%s read back through mtools differs from %s", esPath, src)
		}
		os.Remove(out)
	}
	// fsck.fat wants the filesystem on its own: cut the ESP out.
	part := filepath.Join(dir, "esp.img")
	run(t, dir, "dd", "if="+img, "of="+part, "bs=1M", "conv=sparse", "status=none",
		fmt.Sprintf("skip=%d", esp.Offset()/mib), fmt.Sprintf("count=%d", esp.Size()/mib))
	fsck := run(t, dir, "fsck.fat", "-n", "-v", part)
	want := "16 bit entries"
	if layout.ESPFAT32 {
		want = "32 bit entries"
	}
	if !strings.Contains(fsck, want) {
		t.Errorf("fsck.fat does not see %s:\n%s", want, fsck)
	}
}

func TestSameInputsSameBytes(t *testing.T) {
	dir := t.TempDir()
	in := fakeInputs(t, dir)
	a, b, c := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img"), filepath.Join(dir, "c.img")
	for _, p := range []string{a, b} {
		if err := Write(context.Background(), p, in, WithModTime(1700000000)); err != nil {
			t.Fatal(err)
		}
	}
	if sumFile(t, a) != sumFile(t, b) {
		t.Fatal("two writes of the same inputs differ")
	}
	in.Cmdline += " loglevel=3"
	if err := Write(context.Background(), c, in, WithModTime(1700000000)); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	dc, _ := os.ReadFile(c)
	if bytes.Equal(da[512+56:512+72], dc[512+56:512+72]) {
		t.Error("a different cmdline kept the same disk GUID")
	}
}

func TestBadInputsLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	in := fakeInputs(t, dir)
	out := t.TempDir()
	img := filepath.Join(out, "disk.img")
	cases := map[string]struct {
		mutate func(*Inputs)
		want   string
	}{
		"missing kernel":  {func(i *Inputs) { i.Kernel = filepath.Join(dir, "nope") }, "Kernel:"},
		"newline cmdline": {func(i *Inputs) { i.Cmdline = "console=ttyS0\ninit=/bin/sh" }, "newline"},
		"quote cmdline":   {func(i *Inputs) { i.Cmdline = `a="b c"` }, "cmdline"},
		"bad boot.img":    {func(i *Inputs) { i.BIOSBootImage = i.Kernel }, "BIOSBootImage"},
		"directory":       {func(i *Inputs) { i.Rootfs = dir }, "Rootfs:"},
		"negative data":   {func(i *Inputs) { i.DataSize = -1 }, "DataSize"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			bad := in
			c.mutate(&bad)
			err := Write(context.Background(), img, bad)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Fatalf("failed write left %v behind", ents[0].Name())
			}
		})
	}
	// A rootfs that vanishes mid-way fails the write after the temp file
	// exists: it must be removed and an old disk kept.
	if err := os.WriteFile(img, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := in
	bad.Rootfs = filepath.Join(dir, "shrinks.img")
	writeRandom(t, bad.Rootfs, 2*mib, 9)
	p, err := makePlan(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(bad.Rootfs, mib)
	f, _ := os.Create(filepath.Join(out, "scratch"))
	defer f.Close()
	if err := p.write(f); err == nil || !strings.Contains(err.Error(), "changed size") {
		t.Errorf("shrinking rootfs: error %v, want a size change", err)
	}
	if got, _ := os.ReadFile(img); string(got) != "old" {
		t.Error("old disk was changed")
	}
}

func sumFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
