package format

import (
	"bufio"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"unicode/utf16"
)

// VHDX layout ([MS-VHDX] v20160714), as QEMU and Hyper-V lay it out: the
// header section in the first MiB, the (empty) log in the second, the
// metadata region in the third, the BAT from the fourth, then payload
// blocks.
const (
	vhdxBlock       = 1 << 20 // payload block size: Microsoft's advice for Linux guests
	vhdxLogOffset   = 1 * mib
	vhdxLogLength   = 1 * mib
	vhdxMetaOffset  = 2 * mib
	vhdxMetaLength  = 1 * mib
	vhdxBATOffset   = 3 * mib
	vhdxLogicalSec  = 512
	vhdxPhysicalSec = 4096
	// A chunk is the payload blocks one sector-bitmap block would cover.
	vhdxChunkRatio = (1 << 23) * vhdxLogicalSec / vhdxBlock

	batFullyPresent = 6
)

var (
	guidBATRegion  = msGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	guidMetaRegion = msGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	guidFileParams = msGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	guidDiskSize   = msGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	guidPage83     = msGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	guidLogSector  = msGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	guidPhysSector = msGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// msGUID encodes a GUID string as Windows stores it: the first three
// fields little-endian, the rest as written.
func msGUID(s string) [16]byte {
	var raw [16]byte
	j := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		var v byte
		for _, c := range s[i : i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'A' && c <= 'F':
				v |= byte(c - 'A' + 10)
			case c >= 'a' && c <= 'f':
				v |= byte(c - 'a' + 10)
			}
		}
		raw[j] = v
		j++
		i++
	}
	return [16]byte{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6],
		raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]}
}

// writeVHDX writes a dynamic VHDX: payload blocks that hold any non-zero
// byte are stored, fully present, in disk order; the others are left "not
// present", which reads as zeros. The GUIDs (file, data, page 83) are
// derived from the content; the log is empty (a zero log GUID).
func writeVHDX(ctx context.Context, src Source, f *os.File, _ string, o Options) error {
	size := roundUp(src.Size, vhdxLogicalSec)
	dataBlocks := (size + vhdxBlock - 1) / vhdxBlock
	batEntries := dataBlocks + (dataBlocks-1)/vhdxChunkRatio
	batLength := roundUp(batEntries*8, mib)
	bat := make([]byte, batEntries*8)
	id := newContentID("vhdx", size)
	pos := int64(vhdxBATOffset) + batLength
	if _, err := f.Seek(pos, io.SeekStart); err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err := hashed(ctx, src, vhdxBlock, o.Workers, id, func(idx int64, b []byte) error {
		entry := idx + idx/vhdxChunkRatio // a sector-bitmap entry follows every chunk
		binary.LittleEndian.PutUint64(bat[entry*8:], uint64(pos/mib)<<20|batFullyPresent)
		pos += vhdxBlock
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Truncate(pos); err != nil {
		return err
	}
	if _, err := f.WriteAt(bat, vhdxBATOffset); err != nil {
		return err
	}
	if _, err := f.WriteAt(vhdxMetadata(size, id.guid("vhdx page83")), vhdxMetaOffset); err != nil {
		return err
	}
	region := vhdxRegionTable(batLength)
	for _, off := range []int64{192 << 10, 256 << 10} {
		if _, err := f.WriteAt(region, off); err != nil {
			return err
		}
	}
	for i, off := range []int64{64 << 10, 128 << 10} {
		h := vhdxHeader(uint64(i), id.guid("vhdx file write"), id.guid("vhdx data write"))
		if _, err := f.WriteAt(h, off); err != nil {
			return err
		}
	}
	ident := make([]byte, 8+512)
	copy(ident, "vhdxfile")
	for i, u := range utf16.Encode([]rune("uni")) {
		binary.LittleEndian.PutUint16(ident[8+2*i:], u)
	}
	_, err = f.WriteAt(ident, 0)
	return err
}

// vhdxHeader is one of the two 4 KiB headers; the one with the higher
// sequence number is current.
func vhdxHeader(seq uint64, fileWrite, dataWrite [16]byte) []byte {
	b := make([]byte, 4096)
	le := binary.LittleEndian
	copy(b, "head")
	le.PutUint64(b[8:], seq)
	copy(b[16:], fileWrite[:])
	copy(b[32:], dataWrite[:])
	// b[48:64]: log GUID zero, nothing to replay
	le.PutUint16(b[64:], 0) // log version
	le.PutUint16(b[66:], 1) // version
	le.PutUint32(b[68:], vhdxLogLength)
	le.PutUint64(b[72:], vhdxLogOffset)
	le.PutUint32(b[4:], crc32.Checksum(b, castagnoli))
	return b
}

func vhdxRegionTable(batLength int64) []byte {
	b := make([]byte, 64<<10)
	le := binary.LittleEndian
	copy(b, "regi")
	le.PutUint32(b[8:], 2)
	for i, r := range []struct {
		guid     [16]byte
		off, len int64
	}{{guidBATRegion, vhdxBATOffset, batLength}, {guidMetaRegion, vhdxMetaOffset, vhdxMetaLength}} {
		e := b[16+32*i:]
		copy(e, r.guid[:])
		le.PutUint64(e[16:], uint64(r.off))
		le.PutUint32(e[24:], uint32(r.len))
		le.PutUint32(e[28:], 1) // required
	}
	le.PutUint32(b[4:], crc32.Checksum(b, castagnoli))
	return b
}

// vhdxMetadata is the metadata region's table and items (file parameters,
// virtual size, page 83 id, sector sizes), as QEMU lays them out.
func vhdxMetadata(size int64, page83 [16]byte) []byte {
	const itemsAt = 64 << 10
	const (
		isVirtualDisk = 1 << 1
		isRequired    = 1 << 2
	)
	b := make([]byte, itemsAt+64)
	le := binary.LittleEndian
	copy(b, "metadata")
	items := []struct {
		guid  [16]byte
		data  []byte
		flags uint32
	}{
		{guidFileParams, le.AppendUint32(le.AppendUint32(nil, vhdxBlock), 0), isRequired},
		{guidDiskSize, le.AppendUint64(nil, uint64(size)), isVirtualDisk | isRequired},
		{guidPage83, page83[:], isVirtualDisk | isRequired},
		{guidLogSector, le.AppendUint32(nil, vhdxLogicalSec), isVirtualDisk | isRequired},
		{guidPhysSector, le.AppendUint32(nil, vhdxPhysicalSec), isVirtualDisk | isRequired},
	}
	le.PutUint16(b[10:], uint16(len(items)))
	off := itemsAt
	for i, it := range items {
		e := b[32+32*i:]
		copy(e, it.guid[:])
		le.PutUint32(e[16:], uint32(off))
		le.PutUint32(e[20:], uint32(len(it.data)))
		le.PutUint32(e[24:], it.flags)
		copy(b[off:], it.data)
		off += len(it.data)
	}
	return b
}
