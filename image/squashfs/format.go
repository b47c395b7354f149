package squashfs

import (
	"encoding/binary"
	"io/fs"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// On-disk constants of squashfs 4.0, as the kernel's squashfs_fs.h has them.
const (
	magic          = 0x73717368
	compressorZstd = 6
	superblockSize = 96
	metadataSize   = 8192 // uncompressed size of a metadata block

	// Set in a metadata block header, a data block size or a fragment
	// size when the bytes are stored uncompressed.
	metaUncompressed = 0x8000
	dataUncompressed = 1 << 24

	noFragment = 0xFFFFFFFF
	noXattr    = 0xFFFFFFFF
	noTable    = 0xFFFFFFFFFFFFFFFF

	maxDirEntries = 256 // per directory header
	maxNameLen    = 256
	maxSymlinkLen = 4096 // the kernel refuses longer targets (PAGE_SIZE)

	fragmentEntrySize = 16
	idsPerBlock       = metadataSize / 4
)

// Superblock flags.
const (
	flagDuplicates      = 0x0040
	flagAlwaysFragments = 0x0020
	flagNoXattrs        = 0x0200
)

// Inode types; a directory entry always carries the basic type.
const (
	typeDir = 1 + iota
	typeFile
	typeSymlink
	typeBlockDev
	typeCharDev
	typeFifo
	typeSocket
	typeExtDir
	typeExtFile
)

// extendedOffset turns a basic inode type into its extended form.
const extendedOffset = typeExtDir - typeDir

type superblock struct {
	inodeCount, modTime, blockSize, fragmentCount uint32
	blockLog, flags, idCount                      uint16
	rootInode, bytesUsed                          uint64
	idTable, inodeTable, dirTable, fragmentTable  uint64
}

func (s *superblock) marshal() []byte {
	b := make([]byte, 0, superblockSize)
	le := binary.LittleEndian
	b = le.AppendUint32(b, magic)
	b = le.AppendUint32(b, s.inodeCount)
	b = le.AppendUint32(b, s.modTime)
	b = le.AppendUint32(b, s.blockSize)
	b = le.AppendUint32(b, s.fragmentCount)
	b = le.AppendUint16(b, compressorZstd)
	b = le.AppendUint16(b, s.blockLog)
	b = le.AppendUint16(b, s.flags)
	b = le.AppendUint16(b, s.idCount)
	b = le.AppendUint16(b, 4) // version 4.0
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, s.rootInode)
	b = le.AppendUint64(b, s.bytesUsed)
	b = le.AppendUint64(b, s.idTable)
	b = le.AppendUint64(b, noTable) // xattr id table
	b = le.AppendUint64(b, s.inodeTable)
	b = le.AppendUint64(b, s.dirTable)
	b = le.AppendUint64(b, s.fragmentTable)
	b = le.AppendUint64(b, noTable) // export table
	return b
}

// unixPerm is the 12 permission bits a squashfs inode stores.
func unixPerm(m fs.FileMode) uint16 { return uint16(rootfs.UnixPerm(m)) }

// basicType is the squashfs inode type of a mode, 0 for what squashfs cannot hold.
func basicType(m fs.FileMode) uint16 {
	switch {
	case m.IsDir():
		return typeDir
	case m.IsRegular():
		return typeFile
	case m&fs.ModeSymlink != 0:
		return typeSymlink
	case m&fs.ModeCharDevice != 0:
		return typeCharDev
	case m&fs.ModeDevice != 0:
		return typeBlockDev
	case m&fs.ModeNamedPipe != 0:
		return typeFifo
	case m&fs.ModeSocket != 0:
		return typeSocket
	}
	return 0
}

// encodeDev packs a device number as the kernel's new_decode_dev reads it.
func encodeDev(major, minor uint32) uint32 {
	return minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12
}
