package closure

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// fakeELF describes a minimal ELF object for tests: program headers only
// (PT_LOAD, PT_INTERP, PT_DYNAMIC), as an object for any machine.
type fakeELF struct {
	class   elf.Class
	data    elf.Data
	machine elf.Machine
	typ     elf.Type
	interp  string
	needed  []string
	soname  string
	rpath   string
	runpath string
	static  bool // no PT_DYNAMIC at all
}

func (f fakeELF) bytes() []byte {
	is64 := f.class == elf.ELFCLASS64
	var bo binary.ByteOrder = binary.LittleEndian
	if f.data == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	ehsize, phsize, dynsize := 52, 32, 8
	if is64 {
		ehsize, phsize, dynsize = 64, 56, 16
	}
	base := uint64(0x400000)
	if f.typ == elf.ET_DYN {
		base = 0
	}
	type dyn struct {
		tag elf.DynTag
		val uint64
	}
	strtab := []byte{0}
	str := func(s string) uint64 {
		off := uint64(len(strtab))
		strtab = append(append(strtab, s...), 0)
		return off
	}
	var dyns []dyn
	for _, n := range f.needed {
		dyns = append(dyns, dyn{elf.DT_NEEDED, str(n)})
	}
	if f.soname != "" {
		dyns = append(dyns, dyn{elf.DT_SONAME, str(f.soname)})
	}
	if f.rpath != "" {
		dyns = append(dyns, dyn{elf.DT_RPATH, str(f.rpath)})
	}
	if f.runpath != "" {
		dyns = append(dyns, dyn{elf.DT_RUNPATH, str(f.runpath)})
	}
	nph := 1
	if f.interp != "" {
		nph++
	}
	if !f.static {
		nph++
	}
	interpOff := uint64(ehsize + nph*phsize)
	interpLen := uint64(0)
	if f.interp != "" {
		interpLen = uint64(len(f.interp) + 1)
	}
	strOff := interpOff + interpLen
	dynOff := strOff + uint64(len(strtab))
	dynOff = (dynOff + 7) &^ 7
	dyns = append(dyns, dyn{elf.DT_STRTAB, base + strOff}, dyn{elf.DT_STRSZ, uint64(len(strtab))}, dyn{elf.DT_NULL, 0})
	total := dynOff + uint64(len(dyns)*dynsize)

	var b bytes.Buffer
	word := func(v uint64) { // an address or offset: 4 or 8 bytes
		if is64 {
			binary.Write(&b, bo, v)
		} else {
			binary.Write(&b, bo, uint32(v))
		}
	}
	b.Write([]byte{0x7f, 'E', 'L', 'F', byte(f.class), byte(f.data), 1, 0})
	b.Write(make([]byte, 8))
	binary.Write(&b, bo, uint16(f.typ))
	binary.Write(&b, bo, uint16(f.machine))
	binary.Write(&b, bo, uint32(1))
	word(base + 0x1000) // e_entry
	word(uint64(ehsize))
	word(0) // no section headers
	binary.Write(&b, bo, uint32(0))
	for _, v := range []int{ehsize, phsize, nph, 0, 0, 0} {
		binary.Write(&b, bo, uint16(v))
	}
	ph := func(typ elf.ProgType, off, size uint64) {
		binary.Write(&b, bo, uint32(typ))
		if is64 {
			binary.Write(&b, bo, uint32(elf.PF_R))
		}
		word(off)
		word(base + off)
		word(base + off)
		word(size)
		word(size)
		if !is64 {
			binary.Write(&b, bo, uint32(elf.PF_R))
		}
		word(8)
	}
	ph(elf.PT_LOAD, 0, total)
	if f.interp != "" {
		ph(elf.PT_INTERP, interpOff, interpLen)
	}
	if !f.static {
		ph(elf.PT_DYNAMIC, dynOff, uint64(len(dyns)*dynsize))
	}
	if f.interp != "" {
		b.WriteString(f.interp)
		b.WriteByte(0)
	}
	b.Write(strtab)
	for uint64(b.Len()) < dynOff {
		b.WriteByte(0)
	}
	for _, d := range dyns {
		if is64 {
			binary.Write(&b, bo, int64(d.tag))
		} else {
			binary.Write(&b, bo, int32(d.tag))
		}
		word(d.val)
	}
	return b.Bytes()
}

// addFile adds a regular file with inline bytes to t.
func addFile(t *testing.T, tree *rootfs.Tree, p string, mode fs.FileMode, data []byte) {
	t.Helper()
	if err := tree.Add(rootfs.Entry{Path: p, Mode: mode, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// addLink adds a symlink to t.
func addLink(t *testing.T, tree *rootfs.Tree, p, target string) {
	t.Helper()
	if err := tree.Add(rootfs.Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Link: target}); err != nil {
		t.Fatal(err)
	}
}

// addHostFile adds the host file hostPath to t at p, its bytes left on the host.
func addHostFile(t *testing.T, tree *rootfs.Tree, p, hostPath string) {
	t.Helper()
	fi, err := os.Stat(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Add(rootfs.Entry{Path: p, Mode: fi.Mode(), Size: fi.Size(), HostPath: hostPath}); err != nil {
		t.Fatal(err)
	}
}
