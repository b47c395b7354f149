package format

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/uniforge/packer-plugin-unikernel/internal/deflate"
)

// VMDK constants (VMware Virtual Disk Format 5.0, "hosted sparse extent"
// and "stream-optimized compressed sparse extent").
const (
	vmdkMagic       = 0x564d444b // "KDMV"
	vmdkGrainSecs   = 128        // 64 KiB grains
	vmdkGrain       = vmdkGrainSecs * 512
	vmdkGTEntries   = 512 // one grain table maps 32 MiB
	vmdkGTSecs      = vmdkGTEntries * 4 / 512
	vmdkDescSecs    = 20 // descriptor space, as QEMU reserves
	vmdkOverhead    = 128
	vmdkFlagNL      = 1 << 0
	vmdkFlagRGD     = 1 << 1
	vmdkFlagComp    = 1 << 16
	vmdkFlagMarkers = 1 << 17
	vmdkGDAtEnd     = ^uint64(0)

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

type vmdkHeader struct {
	flags       uint32
	capacity    uint64 // sectors
	rgdOffset   uint64
	gdOffset    uint64
	compression uint16
}

func (h vmdkHeader) bytes() []byte {
	b := make([]byte, 512)
	le := binary.LittleEndian
	le.PutUint32(b[0:], vmdkMagic)
	le.PutUint32(b[4:], 3) // version 3: what streamOptimized readers expect
	le.PutUint32(b[8:], h.flags)
	le.PutUint64(b[12:], h.capacity)
	le.PutUint64(b[20:], vmdkGrainSecs)
	le.PutUint64(b[28:], 1) // descriptor right after the header
	le.PutUint64(b[36:], vmdkDescSecs)
	le.PutUint32(b[44:], vmdkGTEntries)
	le.PutUint64(b[48:], h.rgdOffset)
	le.PutUint64(b[56:], h.gdOffset)
	le.PutUint64(b[64:], vmdkOverhead)
	b[72] = 0 // clean
	copy(b[73:], "\n \r\n")
	le.PutUint16(b[77:], h.compression)
	return b
}

// vmdkDescriptor is the embedded text descriptor, padded to its sectors.
// The content id is derived from the data; the geometry follows QEMU
// (16 heads for IDE, 255 for SCSI, 63 sectors).
func vmdkDescriptor(createType, extent string, sectors uint64, cid uint32, adapter string) ([]byte, error) {
	heads := uint64(16)
	if adapter != "ide" {
		heads = 255
	}
	cyl := min(sectors/(heads*63), 16383)
	d := fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="%s"

# Extent description
RW %d SPARSE "%s"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "%d"
ddb.geometry.sectors = "63"
ddb.adapterType = "%s"
ddb.toolsVersion = "2147483647"
`, cid, createType, sectors, extent, cyl, heads, adapter)
	if len(d) > vmdkDescSecs*512 {
		return nil, fmt.Errorf("vmdk descriptor too long (%d bytes): extent name %q", len(d), extent)
	}
	b := make([]byte, vmdkDescSecs*512)
	copy(b, d)
	return b, nil
}

// extentName is the file name a vmdk's descriptor names for its own data.
func extentName(dst string, o Options) (string, error) {
	name := filepath.Base(dst)
	if o.Name != "" {
		name = o.Name
	}
	for _, r := range name {
		if r < 0x20 || r == '"' || r == '\\' || r >= 0x7f {
			return "", fmt.Errorf("vmdk extent name %q: only printable ASCII without quotes or backslashes", name)
		}
	}
	return name, nil
}

// writeStreamVMDK writes a streamOptimized VMDK as VMware writes it and
// as vSphere and AWS import it: header with the grain directory "at the
// end", the descriptor, then each non-zero grain deflated (zlib) behind a
// grain marker, each grain table behind a marker after its grains (an
// all-zero table is left out), the grain directory, a footer and the
// end-of-stream marker. Grains are compressed in parallel.
func writeStreamVMDK(ctx context.Context, src Source, f *os.File, dst string, o Options) error {
	extent, err := extentName(dst, o)
	if err != nil {
		return err
	}
	return streamVMDK(ctx, src, f, extent, "ide", o.Workers)
}

func streamVMDK(ctx context.Context, src Source, f *os.File, extent, adapter string, workers int) error {
	sectors := uint64(src.Size / 512)
	hdr := vmdkHeader{
		flags:       vmdkFlagNL | vmdkFlagComp | vmdkFlagMarkers,
		capacity:    sectors,
		gdOffset:    vmdkGDAtEnd,
		compression: 1, // deflate
	}
	id := newContentID("vmdk streamOptimized", src.Size)
	if _, err := f.Seek(vmdkOverhead*512, io.SeekStart); err != nil {
		return err
	}
	s := &vmdkStream{w: bufio.NewWriterSize(f, 1<<20), pos: vmdkOverhead * 512, gtIdx: -1}
	nGT := (int64(sectors) + vmdkGTEntries*vmdkGrainSecs - 1) / (vmdkGTEntries * vmdkGrainSecs)
	s.gd = make([]uint32, nGT)
	err := pipeline(ctx, src, vmdkGrain, workers, newZlibber, zlibJob, func(j *job) error {
		id.add(j.idx, j.sum)
		return s.grain(j.idx, j.out.Bytes())
	})
	if err != nil {
		return err
	}
	if err := s.flushGT(); err != nil {
		return err
	}
	// Grain directory.
	gdSecs := (nGT*4 + 511) / 512
	if err := s.marker(uint64(gdSecs), markerGD); err != nil {
		return err
	}
	hdr.gdOffset = uint64(s.pos / 512)
	gd := make([]byte, gdSecs*512)
	for i, e := range s.gd {
		binary.LittleEndian.PutUint32(gd[i*4:], e)
	}
	if err := s.write(gd); err != nil {
		return err
	}
	// Footer: the header again, now with the directory's offset; then
	// the end-of-stream marker.
	if err := s.marker(1, markerFooter); err != nil {
		return err
	}
	if err := s.write(hdr.bytes()); err != nil {
		return err
	}
	if err := s.marker(0, markerEOS); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	hdr.gdOffset = vmdkGDAtEnd
	cid := id.guid("vmdk cid")
	desc, err := vmdkDescriptor("streamOptimized", extent, sectors, binary.BigEndian.Uint32(cid[:4]), adapter)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(append(hdr.bytes(), desc...), 0)
	return err
}

type vmdkStream struct {
	w     *bufio.Writer
	pos   int64
	gd    []uint32
	gt    [vmdkGTEntries]uint32
	gtIdx int64 // the grain table being filled, -1 for none
}

func (s *vmdkStream) write(b []byte) error {
	_, err := s.w.Write(b)
	s.pos += int64(len(b))
	return err
}

func (s *vmdkStream) pad() error {
	if p := roundUp(s.pos, 512) - s.pos; p > 0 {
		return s.write(zeroPage[:p])
	}
	return nil
}

// marker writes a metadata marker: numSectors, size 0, type, padding.
func (s *vmdkStream) marker(sectors uint64, typ uint32) error {
	var b [512]byte
	binary.LittleEndian.PutUint64(b[0:], sectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return s.write(b[:])
}

// grain writes one compressed grain behind its marker (lba, size).
func (s *vmdkStream) grain(idx int64, packed []byte) error {
	if gt := idx / vmdkGTEntries; gt != s.gtIdx {
		if err := s.flushGT(); err != nil {
			return err
		}
		s.gtIdx = gt
	}
	s.gt[idx%vmdkGTEntries] = uint32(s.pos / 512)
	var m [12]byte
	binary.LittleEndian.PutUint64(m[0:], uint64(idx*vmdkGrainSecs))
	binary.LittleEndian.PutUint32(m[8:], uint32(len(packed)))
	if err := s.write(m[:]); err != nil {
		return err
	}
	if err := s.write(packed); err != nil {
		return err
	}
	return s.pad()
}

// flushGT writes the grain table being filled behind its marker.
func (s *vmdkStream) flushGT() error {
	if s.gtIdx < 0 {
		return nil
	}
	if err := s.marker(vmdkGTSecs, markerGT); err != nil {
		return err
	}
	s.gd[s.gtIdx] = uint32(s.pos / 512)
	var b [vmdkGTSecs * 512]byte
	for i, e := range s.gt {
		binary.LittleEndian.PutUint32(b[i*4:], e)
	}
	s.gt = [vmdkGTEntries]uint32{}
	s.gtIdx = -1
	return s.write(b[:])
}

// zlibber writes one grain as a zlib stream (RFC 1950), as VMDK wants:
// the header zlib writes at its default level, DEFLATE, then Adler-32.
type zlibber struct{ w *deflate.Writer }

func newZlibber() *zlibber {
	w, err := deflate.NewWriter(io.Discard, deflateLevel)
	if err != nil {
		panic(err) // a valid constant level
	}
	return &zlibber{w}
}

func zlibJob(z *zlibber, j *job) error {
	j.sum = xxhash.Sum64(j.in)
	j.out.Write([]byte{0x78, 0x9c})
	z.w.Reset(&j.out)
	if _, err := z.w.Write(j.in); err != nil {
		return err
	}
	if err := z.w.Close(); err != nil {
		return err
	}
	return binary.Write(&j.out, binary.BigEndian, adler32.Checksum(j.in))
}

// writeSparseVMDK writes a monolithicSparse VMDK as QEMU and VMware
// Workstation write it: header, descriptor, redundant and primary grain
// directories each followed by all their grain tables, then the non-zero
// grains, uncompressed, in disk order. Each grain table is written as soon
// as the scan has passed its 32 MiB.
func writeSparseVMDK(ctx context.Context, src Source, f *os.File, dst string, o Options) error {
	extent, err := extentName(dst, o)
	if err != nil {
		return err
	}
	sectors := uint64(src.Size / 512)
	nGT := (int64(sectors) + vmdkGTEntries*vmdkGrainSecs - 1) / (vmdkGTEntries * vmdkGrainSecs)
	gdSecs := (nGT*4 + 511) / 512
	rgd := int64(1 + vmdkDescSecs)
	rgt := rgd + gdSecs
	gd := rgt + nGT*vmdkGTSecs
	gt := gd + gdSecs
	overhead := roundUp(gt+nGT*vmdkGTSecs, vmdkGrainSecs)
	hdr := vmdkHeader{flags: vmdkFlagNL | vmdkFlagRGD, capacity: sectors, rgdOffset: uint64(rgd), gdOffset: uint64(gd)}
	h := hdr.bytes()
	binary.LittleEndian.PutUint64(h[64:], uint64(overhead))
	// Directories: entry i points at grain table i, all preallocated.
	dir := make([]byte, gdSecs*512)
	for _, d := range [][2]int64{{rgd, rgt}, {gd, gt}} {
		for i := range nGT {
			binary.LittleEndian.PutUint32(dir[i*4:], uint32(d[1]+i*vmdkGTSecs))
		}
		if _, err := f.WriteAt(dir, d[0]*512); err != nil {
			return err
		}
	}
	id := newContentID("vmdk monolithicSparse", src.Size)
	if _, err := f.Seek(overhead*512, io.SeekStart); err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	pos := overhead
	table := make([]byte, vmdkGTSecs*512)
	cur := int64(-1)
	flush := func() error {
		if cur < 0 {
			return nil
		}
		for _, base := range []int64{rgt, gt} {
			if _, err := f.WriteAt(table, (base+cur*vmdkGTSecs)*512); err != nil {
				return err
			}
		}
		clear(table)
		return nil
	}
	err = hashed(ctx, src, vmdkGrain, o.Workers, id, func(idx int64, b []byte) error {
		if t := idx / vmdkGTEntries; t != cur {
			if err := flush(); err != nil {
				return err
			}
			cur = t
		}
		binary.LittleEndian.PutUint32(table[(idx%vmdkGTEntries)*4:], uint32(pos))
		pos += vmdkGrainSecs
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if err := f.Truncate(pos * 512); err != nil {
		return err
	}
	cid := id.guid("vmdk cid")
	desc, err := vmdkDescriptor("monolithicSparse", extent, sectors, binary.BigEndian.Uint32(cid[:4]), "ide")
	if err != nil {
		return err
	}
	_, err = f.WriteAt(append(h, desc...), 0)
	return err
}
