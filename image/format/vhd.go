package format

import (
	"context"
	"encoding/binary"
	"os"
)

// vhdEpoch is the VHD timestamp origin, 2000-01-01 00:00:00 UTC, in Unix seconds.
const vhdEpoch = 946684800

const mib = 1 << 20

// writeVHD writes a fixed VHD: the disk, zero-padded to a whole MiB (Azure
// refuses anything else), then the 512-byte footer.
func writeVHD(ctx context.Context, src Source, f *os.File, _ string, o Options) error {
	size := roundUp(src.Size, mib)
	id := newContentID("vhd", size)
	if _, err := copySparse(ctx, src, f, size, id, o.Workers); err != nil {
		return err
	}
	footer := vhdFooter(size, o.SourceDateEpoch, id.guid("vhd uuid"))
	_, err := f.WriteAt(footer[:], size)
	return err
}

// vhdFooter is the footer of a fixed VHD of size bytes (Virtual Hard Disk
// Image Format Specification, 2006). The CHS geometry is the maximum
// (65535/16/255), as qemu-img writes it with force_size=on (Azure's
// documented recipe): readers then take current_size as the size, where a
// computed geometry would make QEMU and Virtual PC round the disk down.
func vhdFooter(size, epoch int64, uuid [16]byte) [512]byte {
	var b [512]byte
	be := binary.BigEndian
	copy(b[0:], "conectix")
	be.PutUint32(b[8:], 2)           // features: reserved bit, always set
	be.PutUint32(b[12:], 0x00010000) // format version 1.0
	be.PutUint64(b[16:], ^uint64(0)) // data offset: none, a fixed disk
	ts := max(epoch-vhdEpoch, 0)
	be.PutUint32(b[24:], uint32(min(ts, 1<<32-1)))
	copy(b[28:], "uni ")
	be.PutUint32(b[32:], 0x00010000)
	copy(b[36:], "Wi2k")
	be.PutUint64(b[40:], uint64(size))
	be.PutUint64(b[48:], uint64(size))
	be.PutUint16(b[56:], 65535)
	b[58], b[59] = 16, 255
	be.PutUint32(b[60:], 2) // disk type: fixed
	copy(b[68:], uuid[:])
	var sum uint32
	for _, x := range b {
		sum += uint32(x)
	}
	be.PutUint32(b[64:], ^sum)
	return b
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
