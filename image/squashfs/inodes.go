package squashfs

import (
	"encoding/binary"
	"math"

	"golang.org/x/sys/unix"
)

// tableBuilder writes the inode and directory tables, in one pass over
// the nodes: children before their directory, since a directory's
// listing needs its children's inode positions and the directory's inode
// needs its listing's position.
type tableBuilder struct {
	inodes, dirs *metaWriter
	dirBytes     uint64 // uncompressed bytes written to dirs so far
	ids          *idTable
	modTime      uint32
	files        []fileData
	inodeCount   uint32
}

var le = binary.LittleEndian

// header starts an inode: its common 16 bytes.
func (b *tableBuilder) header(n *node, typ uint16) []byte {
	h := make([]byte, 0, 64)
	h = le.AppendUint16(h, typ)
	h = le.AppendUint16(h, unixPerm(n.e.Mode))
	h = le.AppendUint16(h, b.ids.index[n.e.UID])
	h = le.AppendUint16(h, b.ids.index[n.e.GID])
	h = le.AppendUint32(h, b.modTime)
	return le.AppendUint32(h, n.number)
}

func (b *tableBuilder) writeDir(n *node) {
	subdirs := uint32(0)
	for _, c := range n.children {
		if c.e.IsDir() {
			b.writeDir(c)
			subdirs++
		} else {
			b.writeLeaf(c)
		}
	}
	startBlock, startOffset := b.dirs.ref()
	size, index := b.writeListing(n)
	parent := b.inodeCount + 1 // what the root's ".." holds, as mksquashfs does
	if n.parent != nil {
		parent = n.parent.number
	}
	n.ref = b.inodes.inodeRef()
	fileSize := size + 3 // the kernel counts "." and ".." as 3 bytes
	if len(index) == 0 && fileSize <= math.MaxUint16 {
		h := b.header(n, typeDir)
		h = le.AppendUint32(h, uint32(startBlock))
		h = le.AppendUint32(h, 2+subdirs)
		h = le.AppendUint16(h, uint16(fileSize))
		h = le.AppendUint16(h, startOffset)
		h = le.AppendUint32(h, parent)
		b.inodes.write(h)
		return
	}
	h := b.header(n, typeExtDir)
	h = le.AppendUint32(h, 2+subdirs)
	h = le.AppendUint32(h, fileSize)
	h = le.AppendUint32(h, uint32(startBlock))
	h = le.AppendUint32(h, parent)
	h = le.AppendUint16(h, uint16(len(index)))
	h = le.AppendUint16(h, startOffset)
	h = le.AppendUint32(h, noXattr)
	for _, ix := range index {
		h = le.AppendUint32(h, ix.offset)
		h = le.AppendUint32(h, ix.block)
		h = le.AppendUint32(h, uint32(len(ix.name)-1))
		h = append(h, ix.name...)
	}
	b.inodes.write(h)
}

// dirIndex lets the kernel's lookup skip to the header of a long
// directory that starts in a given metadata block.
type dirIndex struct {
	offset uint32 // of the header, from the listing's start
	block  uint32 // metadata block holding the header, from the table start
	name   string // first name under that header
}

// writeListing writes n's entries as runs under headers. A run ends at
// 256 entries, when the inodes change metadata block or are too far apart
// in number, and when the listing enters a new metadata block (so every
// block of a long directory has an index entry).
func (b *tableBuilder) writeListing(n *node) (uint32, []dirIndex) {
	start := b.dirBytes
	var index []dirIndex
	prevBlock, _ := b.dirs.ref() // block of the previous header
	kids := n.children
	for len(kids) > 0 {
		first := kids[0]
		hdrPos := b.dirBytes
		inodeBlock := first.ref >> 16
		count := 0
		pos := hdrPos + 12
		for _, c := range kids {
			diff := int64(c.number) - int64(first.number)
			if count == maxDirEntries || c.ref>>16 != inodeBlock || diff < math.MinInt16 || diff > math.MaxInt16 ||
				(count > 0 && pos/metadataSize != hdrPos/metadataSize) {
				break
			}
			count++
			pos += 8 + uint64(len(c.name))
		}
		if blk, _ := b.dirs.ref(); blk != prevBlock {
			index = append(index, dirIndex{offset: uint32(hdrPos - start), block: uint32(blk), name: first.name})
			prevBlock = blk
		}
		rec := make([]byte, 0, pos-hdrPos)
		rec = le.AppendUint32(rec, uint32(count-1))
		rec = le.AppendUint32(rec, uint32(inodeBlock))
		rec = le.AppendUint32(rec, first.number)
		for _, c := range kids[:count] {
			rec = le.AppendUint16(rec, uint16(c.ref&0xffff))
			rec = le.AppendUint16(rec, uint16(int16(int64(c.number)-int64(first.number))))
			rec = le.AppendUint16(rec, basicType(c.e.Mode))
			rec = le.AppendUint16(rec, uint16(len(c.name)-1))
			rec = append(rec, c.name...)
		}
		b.dirs.write(rec)
		b.dirBytes += uint64(len(rec))
		kids = kids[count:]
	}
	return uint32(b.dirBytes - start), index
}

// writeLeaf writes the inode of anything but a directory.
func (b *tableBuilder) writeLeaf(n *node) {
	n.ref = b.inodes.inodeRef()
	e := n.e
	typ := basicType(e.Mode)
	switch typ {
	case typeFile:
		b.inodes.write(b.fileInode(n))
		return
	case typeSymlink:
		h := b.header(n, typ)
		h = le.AppendUint32(h, 1)
		h = le.AppendUint32(h, uint32(len(e.Link)))
		b.inodes.write(append(h, e.Link...))
	case typeBlockDev, typeCharDev:
		h := b.header(n, typ)
		h = le.AppendUint32(h, 1)
		b.inodes.write(le.AppendUint32(h, encodeDev(unix.Major(e.Rdev), unix.Minor(e.Rdev))))
	default: // fifo, socket
		b.inodes.write(le.AppendUint32(b.header(n, typ), 1))
	}
}

func (b *tableBuilder) fileInode(n *node) []byte {
	fd := b.files[n.file]
	if fd.dupOf >= 0 {
		fd = b.files[fd.dupOf]
	}
	size := uint64(n.e.Size)
	var h []byte
	if size <= math.MaxUint32 && fd.start <= math.MaxUint32 {
		h = b.header(n, typeFile)
		h = le.AppendUint32(h, uint32(fd.start))
		h = le.AppendUint32(h, fd.fragIndex)
		h = le.AppendUint32(h, fd.fragOffset)
		h = le.AppendUint32(h, uint32(size))
	} else {
		h = b.header(n, typeExtFile)
		h = le.AppendUint64(h, fd.start)
		h = le.AppendUint64(h, size)
		h = le.AppendUint64(h, fd.sparse)
		h = le.AppendUint32(h, 1) // link count
		h = le.AppendUint32(h, fd.fragIndex)
		h = le.AppendUint32(h, fd.fragOffset)
		h = le.AppendUint32(h, noXattr)
	}
	for _, s := range fd.blocks {
		h = le.AppendUint32(h, s)
	}
	return h
}
