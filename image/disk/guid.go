package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a GPT GUID held in its textual (big-endian) byte order.
type GUID [16]byte

// Partition type GUIDs used on the disk.
const (
	// BIOSBootPartitionType holds GRUB's core.img for BIOS boot.
	BIOSBootPartitionType = "21686148-6449-6E6F-744E-656564454649"
	// ESPPartitionType is the EFI System Partition.
	ESPPartitionType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	// RootfsPartitionType marks uni's read-only rootfs partition. It is our
	// own; the guest init finds the rootfs by its superblock digest, so the
	// type only tells people and tools what the partition is.
	RootfsPartitionType = "E299D501-E40D-4A73-874A-BD07D5B53C94"
	// DataPartitionType is the Linux filesystem data type, for the optional
	// data partition the app formats itself.
	DataPartitionType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// ParseGUID reads the canonical 8-4-4-4-12 hex form.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 ||
		len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q: want the 8-4-4-4-12 hex form", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	copy(g[:], b)
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String gives the canonical upper-case form, as sfdisk and sgdisk print it.
func (g GUID) String() string {
	h := strings.ToUpper(hex.EncodeToString(g[:]))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// onDisk returns the GPT's mixed-endian encoding: the first three fields
// little-endian, the last two as they are.
func (g GUID) onDisk() [16]byte {
	var b [16]byte
	binary.LittleEndian.PutUint32(b[0:4], binary.BigEndian.Uint32(g[0:4]))
	binary.LittleEndian.PutUint16(b[4:6], binary.BigEndian.Uint16(g[4:6]))
	binary.LittleEndian.PutUint16(b[6:8], binary.BigEndian.Uint16(g[6:8]))
	copy(b[8:], g[8:])
	return b
}

// derivedGUID makes a stable GUID from the disk's content digest and a
// label, so the same inputs always give the same GUIDs. It is laid out as
// an RFC 9562 version 8 (custom) UUID.
func derivedGUID(digest []byte, label string) GUID {
	h := sha256.New()
	h.Write(digest)
	h.Write([]byte{0})
	h.Write([]byte(label))
	var g GUID
	copy(g[:], h.Sum(nil))
	g[6] = g[6]&0x0f | 0x80
	g[8] = g[8]&0x3f | 0x80
	return g
}
