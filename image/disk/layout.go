package disk

// Partition is one GPT partition of the disk.
type Partition struct {
	Number   int    // 1-based GPT entry number
	Name     string // GPT partition name
	Type     string // partition type GUID, canonical form
	GUID     string // unique partition GUID; empty until the contents are hashed
	FirstLBA uint64
	LastLBA  uint64 // inclusive
}

// Offset is the partition's start in bytes.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * sectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * sectorSize }

// Layout is the computed partition table of a disk.
type Layout struct {
	SectorSize   int
	TotalSectors uint64
	Partitions   []Partition // BIOS boot, ESP, rootfs, then data if asked for
	ESPFAT32     bool        // the ESP is FAT32 (else FAT16)
}

// Size is the disk's length in bytes.
func (l *Layout) Size() int64 { return int64(l.TotalSectors) * sectorSize }

// Partition numbers, fixed so that tools and docs can name them.
const (
	BIOSBootPartition = 1
	ESPPartition      = 2
	RootfsPartition   = 3
	DataPartition     = 4
)

const (
	gptEntries     = 128
	gptEntrySize   = 128
	gptTableSector = gptEntries * gptEntrySize / sectorSize // 32
	alignSectors   = mib / sectorSize
)

// computeLayout places the partitions back to back on 1 MiB boundaries,
// with 1 MiB left at the end for the backup GPT.
func computeLayout(coreSize, espSize, rootfsSize, dataSize int64, esp32 bool) *Layout {
	l := &Layout{SectorSize: sectorSize, ESPFAT32: esp32}
	next := uint64(alignSectors)
	add := func(num int, name, typ string, size int64) {
		sectors := uint64(roundUp(size, mib) / sectorSize)
		l.Partitions = append(l.Partitions, Partition{
			Number: num, Name: name, Type: typ, FirstLBA: next, LastLBA: next + sectors - 1,
		})
		next += sectors
	}
	add(BIOSBootPartition, "BIOS boot", BIOSBootPartitionType, max(coreSize, 1))
	add(ESPPartition, "EFI System", ESPPartitionType, espSize)
	add(RootfsPartition, "uni rootfs", RootfsPartitionType, max(rootfsSize, 1))
	if dataSize > 0 {
		add(DataPartition, "uni data", DataPartitionType, dataSize)
	}
	l.TotalSectors = next + alignSectors
	return l
}
