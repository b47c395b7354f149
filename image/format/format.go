// Package format converts a raw disk image (disk.img) into the disk
// formats that hypervisors and clouds import: raw, qcow2, VMDK, VHD, VHDX,
// a GCE tarball and an OVA. It is the one format table behind
// `uni convert` and the Packer post-processor.
//
// Every writer here is our own, in pure Go: no maintained Go library
// writes qcow2, streamOptimized VMDK or VHDX (go-diskfs writes raw, GPT and
// file systems only). All writers stream the input once or twice through
// bounded buffers, store no all-zero block (a hole, an unallocated cluster
// or grain, or a sparse tar entry), take identifiers and timestamps from
// the content and SOURCE_DATE_EPOCH so the same input gives the same
// bytes, and write their output under a temporary name that is renamed
// into place only when complete.
package format

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
)

// Source is a raw disk image: its bytes and its size. When R is an
// *os.File, the writers ask the file system where its holes are
// (SEEK_DATA/SEEK_HOLE) and read only the rest.
type Source struct {
	R    io.ReaderAt
	Size int64
}

// Options tune a conversion. Each field says the formats it applies to;
// the others ignore it.
type Options struct {
	// Compress compresses the data clusters (qcow2, with deflate).
	Compress bool
	// SourceDateEpoch is the time, in Unix seconds, recorded where a
	// format records one (vhd's timestamp, the tar entries of gce and ova).
	SourceDateEpoch int64
	// Name names the virtual machine and the files inside an ova
	// (default "disk"); it is also the extent file name in a vmdk's
	// descriptor (default: the output's base name).
	Name string
	// CPUs and MemoryMiB describe the virtual machine of an ova
	// (defaults 1 and 128).
	CPUs      int
	MemoryMiB int64
	// Workers is how many goroutines compress in parallel (default
	// GOMAXPROCS).
	Workers int
}

// Compression says whether Options.Compress applies to a format.
type Compression int

const (
	CompressNo       Compression = iota // never compressed
	CompressOptional                    // compressed with Options.Compress
	CompressAlways                      // always compressed
)

// Format is one row of the table.
type Format struct {
	Name        string
	Description string // one line: what it is and who imports it
	Ext         string // file extension of the output, with the dot
	Compression Compression
	write       func(ctx context.Context, src Source, f *os.File, dst string, o Options) error
}

// Formats returns the format table, sorted by name.
func Formats() []Format {
	return []Format{
		{"gce", "disk.raw (size rounded up to a GiB) in an oldgnu sparse tar.gz, for Google Compute Engine image import", ".tar.gz", CompressAlways, writeGCE},
		{"ova", "OVF descriptor, streamOptimized VMDK and SHA-256 manifest in one tar, for vSphere, VirtualBox and AWS", ".ova", CompressAlways, writeOVA},
		{"qcow2", "qcow2 v3, 64 KiB clusters, optionally deflate-compressed, for QEMU/KVM, OpenStack and Proxmox", ".qcow2", CompressOptional, writeQcow2},
		{"raw", "a sparse copy of the raw disk, for anything that boots a disk", ".raw", CompressNo, writeRaw},
		{"vhd", "fixed VHD, size rounded up to a MiB plus the footer, for Azure and Hyper-V", ".vhd", CompressNo, writeVHD},
		{"vhdx", "dynamic VHDX, 1 MiB blocks, for Hyper-V", ".vhdx", CompressNo, writeVHDX},
		{"vmdk", "streamOptimized VMDK (compressed grains), for vSphere and AWS ImportImage/ImportSnapshot", ".vmdk", CompressAlways, writeStreamVMDK},
		{"vmdk-sparse", "monolithicSparse VMDK, for VMware Workstation, Fusion and VirtualBox", ".vmdk", CompressNo, writeSparseVMDK},
	}
}

// Names returns the names of all formats, sorted.
func Names() []string {
	var names []string
	for _, f := range Formats() {
		names = append(names, f.Name)
	}
	return names
}

// Lookup finds a format by name.
func Lookup(name string) (Format, error) {
	for _, f := range Formats() {
		if f.Name == name {
			return f, nil
		}
	}
	return Format{}, fmt.Errorf("unknown disk format %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Write converts src into the file dst, atomically: a failure or a
// cancellation leaves no dst and no temporary file.
func (f Format) Write(ctx context.Context, src Source, dst string, o Options) error {
	if o.Compress && f.Compression == CompressNo {
		return fmt.Errorf("format %s cannot be compressed", f.Name)
	}
	if src.Size <= 0 || src.Size%512 != 0 {
		return fmt.Errorf("disk size %d is not a positive multiple of 512 bytes", src.Size)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.CPUs <= 0 {
		o.CPUs = 1
	}
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = 128
	}
	return atomicfile.WriteFile(dst, 0o644, func(out *os.File) error {
		if err := f.write(ctx, src, out, dst, o); err != nil {
			return fmt.Errorf("writing %s as %s: %w", dst, f.Name, err)
		}
		return ctx.Err()
	})
}

// ConvertFile converts the raw disk image at path into dst.
func (f Format) ConvertFile(ctx context.Context, path, dst string, o Options) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if err := f.Write(ctx, Source{R: in, Size: st.Size()}, dst, o); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
