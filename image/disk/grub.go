package disk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Offsets in GRUB's i386-pc boot.img and core.img, from GRUB's
// include/grub/i386/pc/boot.h and what grub-bios-setup patches.
const (
	bootBPBStart      = 0x03 // a DOS BPB may live here; zero on a fresh disk
	bootBPBEnd        = 0x5A
	bootKernelSector  = 0x5C  // 8-byte LBA of core.img's first sector
	bootDrive         = 0x64  // 0xFF: use the drive the BIOS booted from
	bootDriveCheck    = 0x66  // a 2-byte jmp, replaced with nops for hard disks
	bootCodeEnd       = 0x1B8 // 440: the MBR's disk signature starts here
	coreBlocklist     = sectorSize - 12
	coreLoadSegment   = 0x820 // 0x800 (where diskboot.img runs) + 512 bytes
	coreMaxSectors    = (0x78000 - 0x9000) / sectorSize
	grubConfigPath    = "uni/grub.cfg"
	kernelPath        = "uni/kernel"
	initrdPath        = "uni/initrd"
	efiBootPath       = "EFI/BOOT/BOOTX64.EFI"
	grubConfigPathAbs = "/" + grubConfigPath
)

// grubConfig writes the menu-less grub.cfg that boots the kernel at once.
// Each cmdline word is single-quoted so GRUB's script parser passes $, ;
// and the like through; quotes, backslashes and control characters are
// refused because GRUB would rewrite or split on them.
func grubConfig(cmdline string) ([]byte, error) {
	for i, r := range cmdline {
		switch {
		case r == '\n' || r == '\r':
			return nil, fmt.Errorf("cmdline: newline at byte %d: the kernel command line must be one line", i)
		case r < 0x20 || r == 0x7F:
			return nil, fmt.Errorf("cmdline: control character %q at byte %d", r, i)
		case r == '\'' || r == '"' || r == '\\':
			return nil, fmt.Errorf("cmdline: %q at byte %d: GRUB escapes quotes and backslashes, so the kernel would not see them as written", r, i)
		}
	}
	var b strings.Builder
	b.WriteString("set timeout=0\n")
	b.WriteString("linux /" + kernelPath)
	for _, w := range strings.Fields(cmdline) {
		b.WriteString(" '" + w + "'")
	}
	b.WriteString("\ninitrd /" + initrdPath + "\nboot\n")
	return []byte(b.String()), nil
}

// patchBootImage makes LBA 0 as grub-bios-setup would on an empty disk:
// boot.img's code with the BPB area cleared, the drive check disabled, the
// drive byte set to "the boot drive" and core.img's first sector recorded;
// then the disk signature and partition table from mbrTail.
func patchBootImage(bootImg []byte, coreLBA uint64, mbrTail []byte) ([]byte, error) {
	if len(bootImg) != sectorSize {
		return nil, fmt.Errorf("boot.img is %d bytes, want %d", len(bootImg), sectorSize)
	}
	if bootImg[510] != 0x55 || bootImg[511] != 0xAA {
		return nil, fmt.Errorf("boot.img has no 0x55AA boot signature")
	}
	b := make([]byte, sectorSize)
	copy(b, bootImg[:bootCodeEnd])
	clear(b[bootBPBStart:bootBPBEnd])
	binary.LittleEndian.PutUint64(b[bootKernelSector:], coreLBA)
	b[bootDrive] = 0xFF
	b[bootDriveCheck], b[bootDriveCheck+1] = 0x90, 0x90
	copy(b[bootCodeEnd:], mbrTail)
	return b, nil
}

// patchCoreImage pads core.img to whole sectors and fills the blocklist at
// the end of its first sector (diskboot.img): the rest of core.img follows
// contiguously at firstLBA+1, and is loaded at segment 0x820. The entry
// before it is the zero terminator.
func patchCoreImage(coreImg []byte, firstLBA uint64) ([]byte, error) {
	if len(coreImg) < 2*sectorSize {
		return nil, fmt.Errorf("core.img is %d bytes, too small for an i386-pc core image", len(coreImg))
	}
	sectors := ceilDiv64(int64(len(coreImg)), sectorSize)
	if sectors > coreMaxSectors {
		return nil, fmt.Errorf("core.img is %d sectors, more than the %d GRUB's loader can place below 0x78000", sectors, coreMaxSectors)
	}
	c := make([]byte, sectors*sectorSize)
	copy(c, coreImg)
	blk := c[coreBlocklist:sectorSize]
	binary.LittleEndian.PutUint64(blk[0:], firstLBA+1)
	binary.LittleEndian.PutUint16(blk[8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(blk[10:], coreLoadSegment)
	clear(c[coreBlocklist-12 : coreBlocklist])
	return c, nil
}
