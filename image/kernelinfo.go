package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// bzImage boot protocol header fields (Documentation/arch/x86/boot.rst).
const (
	bzMagicOffset    = 0x202 // "HdrS"
	bzPrefAddrOffset = 0x258 // pref_address, 8 bytes
	bzInitSizeOffset = 0x260 // init_size, 4 bytes
	bzHeaderEnd      = 0x264
)

// initrdAllowance and bootSlack are what the guest needs beyond the
// kernel's own decompression footprint: room for the initrd, then enough
// for the kernel to reach init without deadlocking on memory (measured: the
// Debian cloud kernel boots in 96 MiB and deadlocks in 80 MiB).
const (
	initrdAllowance = 8 << 20
	bootSlack       = 16 << 20
)

// KernelMinMemory is the least guest RAM that the bzImage at path boots
// in: where it decompresses (pref_address), its init_size, an initrd and
// some slack, rounded up to 16 MiB.
func KernelMinMemory(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	hdr := make([]byte, bzHeaderEnd)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, fmt.Errorf("%s: not a bzImage: %w", path, err)
	}
	if string(hdr[bzMagicOffset:bzMagicOffset+4]) != "HdrS" {
		return 0, fmt.Errorf("%s: not a bzImage (no HdrS header)", path)
	}
	need := int64(binary.LittleEndian.Uint64(hdr[bzPrefAddrOffset:])) +
		int64(binary.LittleEndian.Uint32(hdr[bzInitSizeOffset:])) + initrdAllowance + bootSlack
	const step = 16 << 20
	return (need + step - 1) / step * step, nil
}
