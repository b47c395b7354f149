package disk

import (
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"
)

// gptHeader encodes a GPT header (primary when backup is false) for the
// entry array whose CRC is entriesCRC.
func (l *Layout) gptHeader(diskGUID GUID, entriesCRC uint32, backup bool) []byte {
	last := l.TotalSectors - 1
	self, other, entriesLBA := uint64(1), last, uint64(2)
	if backup {
		self, other, entriesLBA = last, 1, last-gptTableSector
	}
	h := make([]byte, sectorSize)
	copy(h[0:8], "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], self)
	binary.LittleEndian.PutUint64(h[32:], other)
	binary.LittleEndian.PutUint64(h[40:], 2+gptTableSector)
	binary.LittleEndian.PutUint64(h[48:], last-1-gptTableSector)
	g := diskGUID.onDisk()
	copy(h[56:72], g[:])
	binary.LittleEndian.PutUint64(h[72:], entriesLBA)
	binary.LittleEndian.PutUint32(h[80:], gptEntries)
	binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
	binary.LittleEndian.PutUint32(h[88:], entriesCRC)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return h
}

// gptEntryArray encodes all 128 entries; unused ones are zero.
func (l *Layout) gptEntryArray() ([]byte, error) {
	a := make([]byte, gptEntries*gptEntrySize)
	for _, p := range l.Partitions {
		e := a[(p.Number-1)*gptEntrySize:]
		typ, err := ParseGUID(p.Type)
		if err != nil {
			return nil, err
		}
		id, err := ParseGUID(p.GUID)
		if err != nil {
			return nil, err
		}
		t, u := typ.onDisk(), id.onDisk()
		copy(e[0:16], t[:])
		copy(e[16:32], u[:])
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		for i, c := range utf16.Encode([]rune(p.Name)) {
			if i == 36 {
				break
			}
			binary.LittleEndian.PutUint16(e[56+2*i:], c)
		}
	}
	return a, nil
}

// hybridMBR returns bytes 440..511 of LBA 0: disk signature, the hybrid
// partition table and the boot signature. Entry 1 is the protective 0xEE
// partition from LBA 1 up to the ESP (UEFI requires it to start at LBA 1
// and not be active); entry 2 is the ESP as an active 0xEF partition, for
// BIOS-era tools and boot code that look for one.
func (l *Layout) hybridMBR(signature uint32) []byte {
	b := make([]byte, 72)
	binary.LittleEndian.PutUint32(b[0:], signature)
	esp := l.Partitions[ESPPartition-1]
	mbrEntry(b[6:22], 0x00, 0xEE, 1, esp.FirstLBA-1)
	mbrEntry(b[22:38], 0x80, 0xEF, esp.FirstLBA, esp.LastLBA-esp.FirstLBA+1)
	b[70], b[71] = 0x55, 0xAA
	return b
}

func mbrEntry(e []byte, status, typ byte, first, count uint64) {
	e[0] = status
	copy(e[1:4], chs(first))
	e[4] = typ
	copy(e[5:8], chs(first+count-1))
	binary.LittleEndian.PutUint32(e[8:], uint32(min(first, 0xFFFFFFFF)))
	binary.LittleEndian.PutUint32(e[12:], uint32(min(count, 0xFFFFFFFF)))
}

// chs encodes an LBA for 255 heads and 63 sectors per track, saturating
// at the largest address CHS can hold, as partitioning tools do.
func chs(lba uint64) []byte {
	const heads, sectors = 255, 63
	if lba >= 1024*heads*sectors {
		return []byte{0xFE, 0xFF, 0xFF}
	}
	c := lba / (heads * sectors)
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }
