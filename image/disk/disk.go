// Package disk writes disk.img: a raw GPT disk with a hybrid MBR that boots
// under UEFI and BIOS. It needs no root, mount or loop device: everything
// is written by this package into a regular file, sparse where the
// contents are zero, streamed from the inputs, and renamed into place
// only when complete. The same inputs always give the same bytes.
package disk

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
)

// Inputs are the files a disk is made from (paths on the host) and the
// kernel command line GRUB passes on.
type Inputs struct {
	Kernel  string // bzImage, becomes /uni/kernel on the ESP
	Initrd  string // becomes /uni/initrd on the ESP
	Rootfs  string // rootfs.img, copied verbatim into partition 3
	Cmdline string // kernel command line, one line

	BIOSBootImage string // GRUB i386-pc boot.img (512 bytes)
	BIOSCoreImage string // GRUB i386-pc core.img, placed in partition 1
	EFIImage      string // GRUB x86_64-efi image, /EFI/BOOT/BOOTX64.EFI

	DataSize int64 // bytes of an empty data partition 4; 0 for none
}

type options struct {
	modTime  time.Time
	volumeID *uint32
}

// Option tunes Write and Plan.
type Option func(*options)

// WithModTime sets the timestamp of every file and directory on the ESP,
// in Unix seconds (the caller passes SOURCE_DATE_EPOCH). FAT cannot record
// times before 1980; earlier ones, the default 0 included, become
// 1980-01-01 00:00:00 UTC.
func WithModTime(unix int64) Option {
	return func(o *options) { o.modTime = time.Unix(unix, 0).UTC() }
}

// WithVolumeID fixes the ESP's FAT volume id; by default it is derived
// from the inputs like the GPT GUIDs.
func WithVolumeID(id uint32) Option {
	return func(o *options) { o.volumeID = &id }
}

// plan is everything decided before a byte is written.
type plan struct {
	in       Inputs
	opts     options
	layout   *Layout
	fat      *fatPlan
	bootImg  []byte
	coreImg  []byte
	rootSize int64
}

// Plan computes the partition table Write would produce for in, without
// the GUIDs (which depend on the contents) and without writing anything.
func Plan(in Inputs, opts ...Option) (*Layout, error) {
	p, err := makePlan(in, opts)
	if err != nil {
		return nil, err
	}
	return p.layout, nil
}

func makePlan(in Inputs, opts []Option) (*plan, error) {
	p := &plan{in: in, opts: options{modTime: time.Unix(0, 0).UTC()}}
	for _, o := range opts {
		o(&p.opts)
	}
	if in.DataSize < 0 {
		return nil, fmt.Errorf("DataSize: %d is negative", in.DataSize)
	}
	cfg, err := grubConfig(in.Cmdline)
	if err != nil {
		return nil, err
	}
	named := []struct{ field, path string }{
		{"Kernel", in.Kernel}, {"Initrd", in.Initrd}, {"Rootfs", in.Rootfs},
		{"BIOSBootImage", in.BIOSBootImage}, {"BIOSCoreImage", in.BIOSCoreImage}, {"EFIImage", in.EFIImage},
	}
	sizes := map[string]int64{}
	for _, n := range named {
		if n.path == "" {
			return nil, fmt.Errorf("%s: no file given", n.field)
		}
		fi, err := os.Stat(n.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.field, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s is not a regular file", n.field, n.path)
		}
		sizes[n.field] = fi.Size()
	}
	if sizes["Kernel"] == 0 {
		return nil, fmt.Errorf("Kernel: %s is empty", in.Kernel)
	}
	if sizes["EFIImage"] == 0 {
		return nil, fmt.Errorf("EFIImage: %s is empty", in.EFIImage)
	}
	if sizes["BIOSBootImage"] != sectorSize {
		return nil, fmt.Errorf("BIOSBootImage: %s is %d bytes, want %d", in.BIOSBootImage, sizes["BIOSBootImage"], sectorSize)
	}
	if sizes["BIOSCoreImage"] > coreMaxSectors*sectorSize {
		return nil, fmt.Errorf("BIOSCoreImage: %s is %d bytes, more than GRUB can load (%d)", in.BIOSCoreImage, sizes["BIOSCoreImage"], coreMaxSectors*sectorSize)
	}
	if p.bootImg, err = os.ReadFile(in.BIOSBootImage); err != nil {
		return nil, fmt.Errorf("BIOSBootImage: %w", err)
	}
	if p.coreImg, err = os.ReadFile(in.BIOSCoreImage); err != nil {
		return nil, fmt.Errorf("BIOSCoreImage: %w", err)
	}
	files := []espFile{
		{path: efiBootPath, src: in.EFIImage, size: sizes["EFIImage"]},
		{path: grubConfigPath, data: cfg, size: int64(len(cfg))},
		{path: initrdPath, src: in.Initrd, size: sizes["Initrd"]},
		{path: kernelPath, src: in.Kernel, size: sizes["Kernel"]},
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	if p.fat, err = planFAT(files); err != nil {
		return nil, err
	}
	p.rootSize = sizes["Rootfs"]
	p.layout = computeLayout(int64(len(p.coreImg)), int64(p.fat.totalSectors)*sectorSize, p.rootSize, in.DataSize, p.fat.fat32)
	p.fat.hiddenSectors = uint32(p.layout.Partitions[ESPPartition-1].FirstLBA)
	return p, nil
}

// Write makes the disk image at path from in. It writes a temporary file
// next to path and renames it over path only once it is complete, so a
// failure leaves nothing behind and an old image untouched.
func Write(ctx context.Context, path string, in Inputs, opts ...Option) (err error) {
	p, err := makePlan(in, opts)
	if err != nil {
		return err
	}
	err = atomicfile.WriteFile(path, 0o644, func(f *os.File) error {
		if err := f.Truncate(p.layout.Size()); err != nil {
			return fmt.Errorf("sizing %s: %w", f.Name(), err)
		}
		if err := p.write(ctxio.WriterAt(ctx, f)); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return f.Sync()
	})
	if err != nil {
		return err
	}
	return nil
}

// write fills the (all-zero, sparse) file: contents first, hashed as
// they stream by, then the metadata that carries ids derived from them.
func (p *plan) write(f io.WriterAt) error {
	h := sha256.New()
	p.hashHeader(h)
	buf := make([]byte, copyBufferSize)
	esp := p.layout.Partitions[ESPPartition-1]
	if err := p.fat.writeContents(f, esp.Offset(), p.opts.modTime, h, buf); err != nil {
		return err
	}
	root := p.layout.Partitions[RootfsPartition-1]
	if p.rootSize > 0 {
		if err := copyFileAt(f, root.Offset(), p.in.Rootfs, p.rootSize, h, buf); err != nil {
			return err
		}
	}
	digest := h.Sum(nil)

	volGUID := derivedGUID(digest, "fat volume id")
	volumeID := binary.LittleEndian.Uint32(volGUID[:4])
	if p.opts.volumeID != nil {
		volumeID = *p.opts.volumeID
	}
	if err := p.fat.writeBootSector(f, esp.Offset(), volumeID); err != nil {
		return err
	}
	for i := range p.layout.Partitions {
		part := &p.layout.Partitions[i]
		part.GUID = derivedGUID(digest, fmt.Sprintf("partition %d", part.Number)).String()
	}
	sigGUID := derivedGUID(digest, "mbr signature")
	return p.writeBootAndTables(f, derivedGUID(digest, "disk"), binary.LittleEndian.Uint32(sigGUID[:4]))
}

// hashHeader feeds everything that shapes the disk but is not streamed
// later, so that any change to the inputs changes the ids.
func (p *plan) hashHeader(h hash.Hash) {
	fmt.Fprintf(h, "uni disk v1\x00cmdline=%s\x00data=%d\x00rootfs=%d\x00",
		p.in.Cmdline, p.in.DataSize, p.rootSize)
	h.Write(p.bootImg)
	h.Write(p.coreImg)
}

func (p *plan) writeBootAndTables(f io.WriterAt, diskGUID GUID, mbrSignature uint32) error {
	l := p.layout
	bios := l.Partitions[BIOSBootPartition-1]
	core, err := patchCoreImage(p.coreImg, bios.FirstLBA)
	if err != nil {
		return fmt.Errorf("BIOSCoreImage %s: %w", p.in.BIOSCoreImage, err)
	}
	if _, err := f.WriteAt(core, bios.Offset()); err != nil {
		return err
	}
	mbr, err := patchBootImage(p.bootImg, bios.FirstLBA, l.hybridMBR(mbrSignature))
	if err != nil {
		return fmt.Errorf("BIOSBootImage %s: %w", p.in.BIOSBootImage, err)
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	entries, err := l.gptEntryArray()
	if err != nil {
		return err
	}
	crc := crc32IEEE(entries)
	last := l.TotalSectors - 1
	writes := []struct {
		lba  uint64
		data []byte
	}{
		{1, l.gptHeader(diskGUID, crc, false)},
		{2, entries},
		{last - gptTableSector, entries},
		{last, l.gptHeader(diskGUID, crc, true)},
	}
	for _, w := range writes {
		if _, err := f.WriteAt(w.data, int64(w.lba)*sectorSize); err != nil {
			return fmt.Errorf("writing GPT at LBA %d: %w", w.lba, err)
		}
	}
	return nil
}
