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
	if _, err := copySparse(ctx, src, f, size, id); err != nil {
		return err
	}
	footer := vhdFooter(size, o.SourceDateEpoch, id.guid("vhd uuid"))
	_, err := f.WriteAt(footer[:], size)
	return err
}

// vhdFooter is the footer of a fixed VHD of size bytes (Virtual Hard Disk
// Image Format Specification, 2006). The creator is "qem2", the tag QEMU
// writes with force_size and reads as "the size is current_size, not the
// CHS geometry": with any other tag QEMU would truncate the disk to its
// geometry. Azure reads current_size whatever the tag.
func vhdFooter(size, epoch int64, uuid [16]byte) [512]byte {
	var b [512]byte
	be := binary.BigEndian
	copy(b[0:], "conectix")
	be.PutUint32(b[8:], 2)           // features: reserved bit, always set
	be.PutUint32(b[12:], 0x00010000) // format version 1.0
	be.PutUint64(b[16:], ^uint64(0)) // data offset: none, a fixed disk
	ts := max(epoch-vhdEpoch, 0)
	be.PutUint32(b[24:], uint32(min(ts, 1<<32-1)))
	copy(b[28:], "qem2")
	be.PutUint32(b[32:], 0x00050003)
	copy(b[36:], "Wi2k")
	be.PutUint64(b[40:], uint64(size))
	be.PutUint64(b[48:], uint64(size))
	c, h, s := chsGeometry(size / 512)
	be.PutUint16(b[56:], c)
	b[58], b[59] = h, s
	be.PutUint32(b[60:], 2) // disk type: fixed
	copy(b[68:], uuid[:])
	var sum uint32
	for _, x := range b {
		sum += uint32(x)
	}
	be.PutUint32(b[64:], ^sum)
	return b
}

// chsGeometry is the VHD specification's CHS algorithm (appendix), which
// QEMU's calculate_geometry follows too.
func chsGeometry(sectors int64) (cyl uint16, heads, spt uint8) {
	const maxSectors = 65535 * 16 * 255
	sectors = min(sectors, maxSectors)
	var cth, h, s int64
	if sectors >= 65535*16*63 {
		s, h = 255, 16
		cth = sectors / s
	} else {
		s = 17
		cth = sectors / s
		h = max((cth+1023)/1024, 4)
		if cth >= h*1024 || h > 16 {
			s, h = 31, 16
			cth = sectors / s
		}
		if cth >= h*1024 {
			s, h = 63, 16
			cth = sectors / s
		}
	}
	return uint16(cth / h), uint8(h), uint8(s)
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
