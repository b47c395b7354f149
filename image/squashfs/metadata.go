package squashfs

import (
	"encoding/binary"

	"github.com/klauspost/compress/zstd"
)

// metaWriter builds one metadata table (inodes, directories, fragments,
// ids) in memory: a run of blocks of at most 8 KiB each before
// compression, every one preceded by a 16-bit length. Tables grow with the
// number of files, not with their bytes, so memory stays small.
type metaWriter struct {
	enc         *zstd.Encoder
	cur         []byte   // the block being filled, uncompressed
	out         []byte   // finished blocks, as they go on disk
	blockStarts []uint64 // offset in out of every finished block
}

func newMetaWriter(enc *zstd.Encoder) *metaWriter {
	return &metaWriter{enc: enc, cur: make([]byte, 0, metadataSize)}
}

// ref returns where the next byte written will be: the block's offset from
// the table start and the offset inside the uncompressed block.
func (m *metaWriter) ref() (block uint64, offset uint16) {
	return uint64(len(m.out)), uint16(len(m.cur))
}

// inodeRef packs ref() the way inode references are stored.
func (m *metaWriter) inodeRef() uint64 {
	b, o := m.ref()
	return b<<16 | uint64(o)
}

func (m *metaWriter) write(p []byte) {
	for len(p) > 0 {
		n := copy(m.cur[len(m.cur):metadataSize], p)
		m.cur = m.cur[:len(m.cur)+n]
		p = p[n:]
		if len(m.cur) == metadataSize {
			m.flushBlock()
		}
	}
}

// flush ends the table, writing the last partial block.
func (m *metaWriter) flush() {
	if len(m.cur) > 0 {
		m.flushBlock()
	}
}

func (m *metaWriter) flushBlock() {
	m.blockStarts = append(m.blockStarts, uint64(len(m.out)))
	hdr := len(m.out)
	m.out = append(m.out, 0, 0)
	m.out = m.enc.EncodeAll(m.cur, m.out)
	size := len(m.out) - hdr - 2
	if size >= len(m.cur) {
		m.out = append(m.out[:hdr+2], m.cur...)
		size = len(m.cur) | metaUncompressed
	}
	binary.LittleEndian.PutUint16(m.out[hdr:], uint16(size))
	m.cur = m.cur[:0]
}
