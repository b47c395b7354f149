package format

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// contentID derives identifiers (VHD and VHDX GUIDs, the VMDK content id)
// from what a disk holds, instead of from a clock or a random source: a
// SHA-256 over the disk's size and each non-zero block's index and
// xxHash64. The ids name a disk, they protect nothing: a fast block hash
// (taken on all cores) keeps them from costing more than the copy.
type contentID struct {
	h hash.Hash
}

func newContentID(format string, size int64) *contentID {
	c := &contentID{h: sha256.New()}
	c.h.Write([]byte("uni disk format " + format + "\x00"))
	binary.Write(c.h, binary.LittleEndian, size)
	return c
}

// add records that block idx holds the bytes whose xxHash64 is sum.
func (c *contentID) add(idx int64, sum uint64) {
	var n [16]byte
	binary.LittleEndian.PutUint64(n[:], uint64(idx))
	binary.LittleEndian.PutUint64(n[8:], sum)
	c.h.Write(n[:])
}

// guid returns the identifier named label: 16 bytes of SHA-256(digest ‖
// label), with the RFC 9562 version 8 (custom) and variant bits set.
func (c *contentID) guid(label string) [16]byte {
	d := c.h.Sum(nil)
	s := sha256.Sum256(append(d, label...))
	var g [16]byte
	copy(g[:], s[:16])
	g[6] = g[6]&0x0f | 0x80
	g[8] = g[8]&0x3f | 0x80
	return g
}
