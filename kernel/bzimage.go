package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Fields of the x86 boot protocol's setup header
// (Documentation/arch/x86/boot.rst), by offset in the bzImage.
const (
	bzMagicOffset      = 0x202 // "HdrS"
	bzVersionOffset    = 0x206 // boot protocol version, 2 bytes
	bzKernelVerOffset  = 0x20e // kernel_version: pointer - 0x200 to a NUL-terminated string
	bzXLoadFlagsOffset = 0x236 // xloadflags, 2 bytes
	bzPrefAddrOffset   = 0x258 // pref_address, 8 bytes
	bzInitSizeOffset   = 0x260 // init_size, 4 bytes
	bzHeaderEnd        = 0x264
	bzMinProtocol      = 0x020c // 2.12: xloadflags, pref_address and init_size are there
)

// initrdAllowance and bootSlack are what the guest needs beyond the
// kernel's own decompression footprint: room for the initrd, then enough
// for the kernel to reach init without deadlocking on memory (measured: the
// Debian cloud kernel boots in 96 MiB and deadlocks in 80 MiB).
const (
	initrdAllowance = 8 << 20
	bootSlack       = 16 << 20
	memoryStep      = 16 << 20
	// maxKernelEnd bounds pref_address+init_size: no real kernel
	// decompresses above 1 TiB, and the sum must not overflow.
	maxKernelEnd = 1 << 40
)

// setupHeader is what uni reads from a bzImage's setup header.
type setupHeader struct {
	release     string // uname -r: the first word of kernel_version
	arch        string // "amd64" (XLF_KERNEL_64) or "i386"
	prefAddress uint64 // where the kernel decompresses itself
	initSize    uint32 // the memory it needs there to boot
}

// readSetupHeader parses the setup header of the bzImage read through r,
// and its kernel_version string when withRelease is set.
func readSetupHeader(r io.ReaderAt, withRelease bool) (*setupHeader, error) {
	hdr := make([]byte, bzHeaderEnd)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("not an x86 bzImage: %w", err)
	}
	if string(hdr[bzMagicOffset:bzMagicOffset+4]) != "HdrS" {
		return nil, errors.New("not an x86 bzImage (no HdrS header)")
	}
	if binary.LittleEndian.Uint16(hdr[bzVersionOffset:]) < bzMinProtocol {
		return nil, errors.New("not an x86 bzImage of boot protocol 2.12 or later")
	}
	h := &setupHeader{
		arch:        "i386",
		prefAddress: binary.LittleEndian.Uint64(hdr[bzPrefAddrOffset:]),
		initSize:    binary.LittleEndian.Uint32(hdr[bzInitSizeOffset:]),
	}
	if binary.LittleEndian.Uint16(hdr[bzXLoadFlagsOffset:])&1 != 0 { // XLF_KERNEL_64
		h.arch = "amd64"
	}
	if !withRelease {
		return h, nil
	}
	ptr := int64(binary.LittleEndian.Uint16(hdr[bzKernelVerOffset:]))
	if ptr == 0 {
		return nil, errors.New("bzImage has no kernel_version string")
	}
	buf := make([]byte, 256)
	n, err := r.ReadAt(buf, ptr+0x200)
	if n == 0 {
		return nil, fmt.Errorf("reading kernel_version: %w", err)
	}
	text, _, _ := bytes.Cut(buf[:n], []byte{0})
	release, _, _ := strings.Cut(string(text), " ")
	if release == "" || strings.ContainsAny(release, "/\\\n") || !isPrintable(release) {
		return nil, fmt.Errorf("bad kernel_version %q", text)
	}
	h.release = release
	return h, nil
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// minMemory is the least guest RAM the kernel boots in: where it
// decompresses, its init_size, an initrd and some slack, rounded up to
// 16 MiB.
func (h *setupHeader) minMemory() (int64, error) {
	end := h.prefAddress + uint64(h.initSize)
	if h.prefAddress >= maxKernelEnd || end >= maxKernelEnd {
		return 0, fmt.Errorf("implausible pref_address %#x + init_size %#x", h.prefAddress, h.initSize)
	}
	need := int64(end) + initrdAllowance + bootSlack
	return (need + memoryStep - 1) / memoryStep * memoryStep, nil
}

func openSetupHeader(p string, withRelease bool) (*setupHeader, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := readSetupHeader(f, withRelease)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return h, nil
}

// readBzImageRelease reads the kernel release ("6.1.0-56-cloud-amd64")
// and architecture from an x86 bzImage's setup header.
func readBzImageRelease(p string) (release, arch string, err error) {
	h, err := openSetupHeader(p, true)
	if err != nil {
		return "", "", err
	}
	return h.release, h.arch, nil
}

// MinMemory is the least guest RAM, in bytes, that the bzImage at path
// boots in (direct kernel boot): where it decompresses (pref_address), its
// init_size, an initrd and some slack, rounded up to 16 MiB.
func MinMemory(path string) (int64, error) {
	h, err := openSetupHeader(path, false)
	if err != nil {
		return 0, err
	}
	m, err := h.minMemory()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// MinMemory is the least guest RAM the bundle's kernel boots in.
func (b *Bundle) MinMemory() (int64, error) {
	return MinMemory(b.KernelPath())
}
