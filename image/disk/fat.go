package disk

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// espFile is one file to place on the ESP: its contents come either from
// a file on the host (streamed) or from memory (small generated files).
type espFile struct {
	path string // slash-separated, relative to the ESP root, 8.3 names only
	src  string // host file to stream, or "" when data is set
	data []byte
	size int64
}

// fatDir is a directory on the ESP being planned.
type fatDir struct {
	name     string
	cluster  uint32 // 0 for the FAT16 root, which lives outside the data area
	parent   *fatDir
	children []*fatDir
	files    []*fatFile
}

type fatFile struct {
	name    string
	cluster uint32 // first cluster, 0 for an empty file
	file    espFile
}

// fatPlan is a fully laid out FAT16 or FAT32 filesystem: geometry, where
// every directory and file goes. Only the boot sector waits for the
// volume id, which is known after the contents have been hashed.
type fatPlan struct {
	fat32             bool
	totalSectors      uint32
	sectorsPerCluster uint32
	reservedSectors   uint32
	fatSectors        uint32
	rootDirSectors    uint32 // FAT16 fixed root directory; 0 on FAT32
	clusters          uint32 // data clusters
	hiddenSectors     uint32 // the partition's start LBA, recorded in the BPB
	root              *fatDir
	nextCluster       uint32 // first cluster never allocated
}

const (
	sectorSize     = 512
	fat16RootItems = 512
	mib            = 1 << 20
	fatLabel       = "UNI-ESP    "
)

func (p *fatPlan) clusterBytes() int64 { return int64(p.sectorsPerCluster) * sectorSize }

func (p *fatPlan) dataStartSector() uint32 {
	return p.reservedSectors + 2*p.fatSectors + p.rootDirSectors
}

// clusterOffset is the byte offset of a data cluster from the ESP's start.
func (p *fatPlan) clusterOffset(c uint32) int64 {
	return int64(p.dataStartSector())*sectorSize + int64(c-2)*p.clusterBytes()
}

// planFAT sizes the ESP to hold files plus slack and allocates every
// directory and file contiguously. FAT16 serves up to 512 MiB, FAT32 above.
func planFAT(files []espFile) (*fatPlan, error) {
	var payload int64
	for _, f := range files {
		if f.size > 0xFFFFFFFF {
			return nil, fmt.Errorf("ESP file %s: %d bytes is more than FAT can hold (4 GiB - 1)", f.path, f.size)
		}
		for _, name := range strings.Split(f.path, "/") {
			if !validShortName(name) {
				return nil, fmt.Errorf("ESP file %s: %q is not an 8.3 name", f.path, name)
			}
		}
		payload += f.size
	}
	size := roundUp(payload+payload/8+2*mib, mib)
	if size < 8*mib {
		size = 8 * mib
	}
	for {
		p, err := fatGeometry(size)
		if err != nil {
			return nil, err
		}
		if err := p.allocate(files); err == nil {
			return p, nil
		} else if err != errESPFull {
			return nil, err
		}
		size += 16 * mib
	}
}

var errESPFull = fmt.Errorf("ESP full")

// fatGeometry picks the FAT type, cluster size and table sizes for an ESP
// of size bytes, aligning the data area to whole clusters.
func fatGeometry(size int64) (*fatPlan, error) {
	if size/sectorSize > 0xFFFFFFFF {
		return nil, fmt.Errorf("ESP of %d bytes is too large for FAT", size)
	}
	p := &fatPlan{totalSectors: uint32(size / sectorSize), fat32: size > 512*mib}
	entryBytes := uint32(2)
	if p.fat32 {
		entryBytes = 4
		p.reservedSectors = 32
		p.sectorsPerCluster = 8
	} else {
		p.reservedSectors = 4
		p.rootDirSectors = fat16RootItems * 32 / sectorSize
		p.sectorsPerCluster = 1
		for p.totalSectors/p.sectorsPerCluster > 65524 {
			p.sectorsPerCluster *= 2
		}
	}
	// Size the tables for the most clusters there could be; the small
	// overestimate only costs a few unused FAT sectors.
	maxClusters := (p.totalSectors - p.reservedSectors - p.rootDirSectors) / p.sectorsPerCluster
	p.fatSectors = ceilDiv((maxClusters+2)*entryBytes, sectorSize)
	if rem := p.dataStartSector() % p.sectorsPerCluster; rem != 0 {
		p.reservedSectors += p.sectorsPerCluster - rem
	}
	p.clusters = (p.totalSectors - p.dataStartSector()) / p.sectorsPerCluster
	if !p.fat32 && (p.clusters < 4085 || p.clusters > 65524) ||
		p.fat32 && p.clusters < 65525 {
		return nil, fmt.Errorf("ESP of %d bytes: %d clusters do not make a valid FAT", size, p.clusters)
	}
	p.root = &fatDir{}
	p.nextCluster = 2
	if p.fat32 {
		p.root.cluster = p.alloc(1)
	}
	return p, nil
}

func (p *fatPlan) alloc(n uint32) uint32 {
	c := p.nextCluster
	p.nextCluster += n
	return c
}

// allocate builds the directory tree (in the order files are given, which
// the caller sorts) and gives every directory one cluster and every file a
// contiguous run of clusters.
func (p *fatPlan) allocate(files []espFile) error {
	for _, f := range files {
		parts := strings.Split(f.path, "/")
		dir := p.root
		for _, name := range parts[:len(parts)-1] {
			dir = p.subdir(dir, name)
		}
		dir.files = append(dir.files, &fatFile{name: parts[len(parts)-1], file: f})
	}
	var walk func(d *fatDir)
	walk = func(d *fatDir) {
		for _, c := range d.children {
			c.cluster = p.alloc(1)
		}
		for _, c := range d.children {
			walk(c)
		}
	}
	walk(p.root)
	var files2 []*fatFile
	var collect func(d *fatDir)
	collect = func(d *fatDir) {
		files2 = append(files2, d.files...)
		for _, c := range d.children {
			collect(c)
		}
	}
	collect(p.root)
	for _, f := range files2 {
		n := ceilDiv64(f.file.size, p.clusterBytes())
		if n > 0 {
			f.cluster = p.alloc(uint32(n))
		}
	}
	if p.nextCluster-2 > p.clusters {
		return errESPFull
	}
	return nil
}

func (p *fatPlan) subdir(d *fatDir, name string) *fatDir {
	for _, c := range d.children {
		if c.name == name {
			return c
		}
	}
	c := &fatDir{name: name, parent: d}
	d.children = append(d.children, c)
	return c
}

// writeContents writes the FATs, the directories and the files' data at
// base in w, feeding every file's bytes to h in allocation order.
func (p *fatPlan) writeContents(w io.WriterAt, base int64, mtime time.Time, h hash.Hash, buf []byte) error {
	if err := p.writeTables(w, base); err != nil {
		return err
	}
	var err error
	var walk func(d *fatDir)
	walk = func(d *fatDir) {
		if err != nil {
			return
		}
		err = p.writeDir(w, base, d, mtime)
		for _, c := range d.children {
			walk(c)
		}
	}
	walk(p.root)
	if err != nil {
		return err
	}
	return p.writeFiles(w, base, p.root, h, buf)
}

func (p *fatPlan) writeFiles(w io.WriterAt, base int64, d *fatDir, h hash.Hash, buf []byte) error {
	for _, f := range d.files {
		off := base + p.clusterOffset(f.cluster)
		if f.file.src == "" {
			h.Write(f.file.data)
			if _, err := w.WriteAt(f.file.data, off); err != nil {
				return fmt.Errorf("writing ESP file %s: %w", f.file.path, err)
			}
			continue
		}
		if f.file.size == 0 {
			continue
		}
		if err := copyFileAt(w, off, f.file.src, f.file.size, h, buf); err != nil {
			return err
		}
	}
	for _, c := range d.children {
		if err := p.writeFiles(w, base, c, h, buf); err != nil {
			return err
		}
	}
	return nil
}

// writeTables writes both FAT copies; clusters beyond the last allocated
// one are free (zero) and stay unwritten, so they remain holes.
func (p *fatPlan) writeTables(w io.WriterAt, base int64) error {
	entry := 2
	eoc := uint32(0xFFFF)
	if p.fat32 {
		entry, eoc = 4, 0x0FFFFFFF
	}
	table := make([]byte, int(p.nextCluster)*entry)
	put := func(c, v uint32) {
		if p.fat32 {
			binary.LittleEndian.PutUint32(table[c*4:], v)
		} else {
			binary.LittleEndian.PutUint16(table[c*2:], uint16(v))
		}
	}
	put(0, eoc&^0xFF|0xF8) // media descriptor in the low byte
	put(1, eoc)
	chain := func(first uint32, n uint32) {
		for i := uint32(0); i < n; i++ {
			if i == n-1 {
				put(first+i, eoc)
			} else {
				put(first+i, first+i+1)
			}
		}
	}
	var walk func(d *fatDir)
	walk = func(d *fatDir) {
		if d.cluster != 0 {
			chain(d.cluster, 1)
		}
		for _, f := range d.files {
			if f.cluster != 0 {
				chain(f.cluster, uint32(ceilDiv64(f.file.size, p.clusterBytes())))
			}
		}
		for _, c := range d.children {
			walk(c)
		}
	}
	walk(p.root)
	for i := uint32(0); i < 2; i++ {
		off := base + int64(p.reservedSectors+i*p.fatSectors)*sectorSize
		if _, err := w.WriteAt(table, off); err != nil {
			return fmt.Errorf("writing FAT %d: %w", i+1, err)
		}
	}
	return nil
}

func (p *fatPlan) writeDir(w io.WriterAt, base int64, d *fatDir, mtime time.Time) error {
	var entries []byte
	if d == p.root {
		entries = append(entries, dirEntry(fatLabel, 0x08, 0, 0, mtime)...)
	} else {
		entries = append(entries, dirEntry(".          ", 0x10, d.cluster, 0, mtime)...)
		parent := d.parent.cluster
		if d.parent == p.root {
			parent = 0 // ".." names the root as cluster 0, also on FAT32
		}
		entries = append(entries, dirEntry("..         ", 0x10, parent, 0, mtime)...)
	}
	for _, c := range d.children {
		e := dirEntry(shortName(c.name), 0x10, c.cluster, 0, mtime)
		e[12] = caseFlags(c.name)
		entries = append(entries, e...)
	}
	for _, f := range d.files {
		e := dirEntry(shortName(f.name), 0x20, f.cluster, uint32(f.file.size), mtime)
		e[12] = caseFlags(f.name)
		entries = append(entries, e...)
	}
	off := base + int64(p.reservedSectors+2*p.fatSectors)*sectorSize // FAT16 root region
	limit := int64(p.rootDirSectors) * sectorSize
	if d.cluster != 0 {
		off = base + p.clusterOffset(d.cluster)
		limit = p.clusterBytes()
	}
	if int64(len(entries)) > limit {
		return fmt.Errorf("ESP directory %q has too many entries", d.name)
	}
	_, err := w.WriteAt(entries, off)
	return err
}

// dirEntry encodes one 32-byte short-name directory entry.
func dirEntry(name string, attr byte, cluster, size uint32, mtime time.Time) []byte {
	e := make([]byte, 32)
	copy(e[0:11], name)
	e[11] = attr
	date, clock := dosDateTime(mtime)
	binary.LittleEndian.PutUint16(e[14:], clock)
	binary.LittleEndian.PutUint16(e[16:], date)
	binary.LittleEndian.PutUint16(e[18:], date)
	binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[22:], clock)
	binary.LittleEndian.PutUint16(e[24:], date)
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

// shortName turns "grub.cfg" into the padded 11-byte "GRUB    CFG".
func shortName(name string) string {
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	return fmt.Sprintf("%-8s%-3s", base, ext)
}

// caseFlags sets the NT flags that make an all-lower-case 8.3 name show in
// lower case, so no long-name entries are needed.
func caseFlags(name string) byte {
	base, ext, _ := strings.Cut(name, ".")
	var f byte
	if base == strings.ToLower(base) && base != strings.ToUpper(base) {
		f |= 0x08
	}
	if ext == strings.ToLower(ext) && ext != strings.ToUpper(ext) {
		f |= 0x10
	}
	return f
}

// validShortName reports whether name fits 8.3 without long-name entries.
func validShortName(name string) bool {
	base, ext, _ := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return false
	}
	for _, r := range base + ext {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return base == strings.ToLower(base) || base == strings.ToUpper(base)
}

// dosDateTime encodes t (UTC) in FAT's format; FAT cannot go before 1980.
func dosDateTime(t time.Time) (date, clock uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	clock = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, clock
}

// writeBootSector writes the boot sector (and on FAT32 the FSInfo sector
// and their backups) once the volume id is known.
func (p *fatPlan) writeBootSector(w io.WriterAt, base int64, volumeID uint32) error {
	b := make([]byte, sectorSize)
	copy(b[0:3], []byte{0xEB, 0x3C, 0x90})
	copy(b[3:11], "UNI     ")
	binary.LittleEndian.PutUint16(b[11:], sectorSize)
	b[13] = byte(p.sectorsPerCluster)
	binary.LittleEndian.PutUint16(b[14:], uint16(p.reservedSectors))
	b[16] = 2
	b[21] = 0xF8
	binary.LittleEndian.PutUint16(b[24:], 63)
	binary.LittleEndian.PutUint16(b[26:], 255)
	binary.LittleEndian.PutUint32(b[28:], p.hiddenSectors)
	ext := 36 // extended BPB offset
	if p.fat32 {
		b[1] = 0x58
		binary.LittleEndian.PutUint32(b[32:], p.totalSectors)
		binary.LittleEndian.PutUint32(b[36:], p.fatSectors)
		binary.LittleEndian.PutUint32(b[44:], 2) // root cluster
		binary.LittleEndian.PutUint16(b[48:], 1) // FSInfo sector
		binary.LittleEndian.PutUint16(b[50:], 6) // backup boot sector
		ext = 64
	} else {
		binary.LittleEndian.PutUint16(b[17:], fat16RootItems)
		if p.totalSectors < 0x10000 {
			binary.LittleEndian.PutUint16(b[19:], uint16(p.totalSectors))
		} else {
			binary.LittleEndian.PutUint32(b[32:], p.totalSectors)
		}
		binary.LittleEndian.PutUint16(b[22:], uint16(p.fatSectors))
	}
	b[ext] = 0x80
	b[ext+2] = 0x29
	binary.LittleEndian.PutUint32(b[ext+3:], volumeID)
	copy(b[ext+7:ext+18], fatLabel)
	if p.fat32 {
		copy(b[ext+18:ext+26], "FAT32   ")
	} else {
		copy(b[ext+18:ext+26], "FAT16   ")
	}
	// Not bootable: a BIOS that jumps here gets "int 18h" (boot failed).
	copy(b[b[1]+2:], []byte{0xCD, 0x18})
	b[510], b[511] = 0x55, 0xAA
	if _, err := w.WriteAt(b, base); err != nil {
		return fmt.Errorf("writing ESP boot sector: %w", err)
	}
	if !p.fat32 {
		return nil
	}
	info := make([]byte, sectorSize)
	binary.LittleEndian.PutUint32(info[0:], 0x41615252)
	binary.LittleEndian.PutUint32(info[484:], 0x61417272)
	binary.LittleEndian.PutUint32(info[488:], p.clusters-(p.nextCluster-2))
	binary.LittleEndian.PutUint32(info[492:], p.nextCluster)
	binary.LittleEndian.PutUint32(info[508:], 0xAA550000)
	for _, sector := range []int64{0, 6} {
		if sector != 0 {
			if _, err := w.WriteAt(b, base+sector*sectorSize); err != nil {
				return fmt.Errorf("writing ESP backup boot sector: %w", err)
			}
		}
		if _, err := w.WriteAt(info, base+(sector+1)*sectorSize); err != nil {
			return fmt.Errorf("writing ESP FSInfo: %w", err)
		}
	}
	return nil
}

func ceilDiv(a, b uint32) uint32 { return (a + b - 1) / b }
func ceilDiv64(a, b int64) int64 { return (a + b - 1) / b }
func roundUp(a, b int64) int64   { return ceilDiv64(a, b) * b }
