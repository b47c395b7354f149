package closure

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// elfInfo is what the closure needs from one ELF object. It is read from
// the program headers, as ld.so reads it, so objects without section
// headers (sstrip'ed) are understood too.
type elfInfo struct {
	Class     elf.Class
	Data      elf.Data
	Machine   elf.Machine
	Type      elf.Type
	Interp    string   // PT_INTERP, empty for static objects
	Needed    []string // DT_NEEDED, in order
	Soname    string   // DT_SONAME
	Rpath     []string // DT_RPATH, ':'-split; empty when DT_RUNPATH is present (as ld.so ignores it then)
	Runpath   []string // DT_RUNPATH, ':'-split
	Dynamic   bool     // has PT_DYNAMIC
	UsesIconv bool     // its dynamic string table names iconv_open (see gconv in sysfiles.go)
	IsGo      bool     // built by the Go toolchain
}

// Limits that keep a hostile ELF from making us allocate or loop without bound.
const (
	maxInterpLen  = 4096
	maxDynEntries = 1 << 16
	maxStrtab     = 64 << 20
)

// sameABI reports whether o can be loaded into a process whose main program
// is m: ld.so skips a candidate library of another class or machine.
func (m *elfInfo) sameABI(o *elfInfo) bool {
	return m.Class == o.Class && m.Data == o.Data && m.Machine == o.Machine
}

// isELF reports whether the file at e starts with the ELF magic.
func isELF(e *rootfs.Entry) bool {
	r, closer, err := openAt(e)
	if err != nil {
		return false
	}
	defer closer.Close()
	var magic [4]byte
	_, err = r.ReadAt(magic[:], 0)
	return err == nil && string(magic[:]) == elf.ELFMAG
}

// readELF parses the regular file at e (its real path is e.Path).
func readELF(e *rootfs.Entry) (*elfInfo, error) {
	r, closer, err := openAt(e)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	info, err := parseELF(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	return info, nil
}

// openAt gives random access to a regular file's bytes.
func openAt(e *rootfs.Entry) (io.ReaderAt, io.Closer, error) {
	if !e.IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", e.Path)
	}
	if e.HostPath == "" {
		return bytes.NewReader(e.Data), io.NopCloser(nil), nil
	}
	f, err := os.Open(e.HostPath)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// parseELF reads the parts of an ELF object the closure needs. Malformed
// input gives an error, never a panic (the fuzz test runs decodeELF
// itself, so that a panic there is found rather than hidden).
func parseELF(r io.ReaderAt) (info *elfInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("malformed ELF: %v", p)
		}
	}()
	return decodeELF(r)
}

func decodeELF(r io.ReaderAt) (*elfInfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info := &elfInfo{Class: f.Class, Data: f.Data, Machine: f.Machine, Type: f.Type}
	info.IsGo = f.Section(".go.buildinfo") != nil || f.Section(".note.go.buildid") != nil
	var dyn *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			if p.Filesz == 0 || p.Filesz > maxInterpLen {
				return nil, fmt.Errorf("PT_INTERP of %d bytes", p.Filesz)
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("reading PT_INTERP: %w", err)
			}
			info.Interp = strings.TrimRight(string(b), "\x00")
		case elf.PT_DYNAMIC:
			dyn = p
		}
	}
	if dyn == nil {
		return info, nil
	}
	info.Dynamic = true
	if err := readDynamic(r, f, dyn, info); err != nil {
		return nil, err
	}
	return info, nil
}

// readDynamic decodes the PT_DYNAMIC segment and the strings it names.
func readDynamic(r io.ReaderAt, f *elf.File, dyn *elf.Prog, info *elfInfo) error {
	entSize := uint64(16)
	if f.Class == elf.ELFCLASS32 {
		entSize = 8
	}
	n := dyn.Filesz / entSize
	if n > maxDynEntries {
		return fmt.Errorf("PT_DYNAMIC with %d entries", n)
	}
	raw := make([]byte, n*entSize)
	if _, err := dyn.ReadAt(raw, 0); err != nil {
		return fmt.Errorf("reading PT_DYNAMIC: %w", err)
	}
	type tagVal struct {
		tag elf.DynTag
		val uint64
	}
	var ents []tagVal
	var strtab, strsz uint64
	for i := uint64(0); i < n; i++ {
		b := raw[i*entSize:]
		var tv tagVal
		if f.Class == elf.ELFCLASS32 {
			tv = tagVal{elf.DynTag(int32(f.ByteOrder.Uint32(b))), uint64(f.ByteOrder.Uint32(b[4:]))}
		} else {
			tv = tagVal{elf.DynTag(int64(f.ByteOrder.Uint64(b))), f.ByteOrder.Uint64(b[8:])}
		}
		if tv.tag == elf.DT_NULL {
			break
		}
		switch tv.tag {
		case elf.DT_STRTAB:
			strtab = tv.val
		case elf.DT_STRSZ:
			strsz = tv.val
		}
		ents = append(ents, tv)
	}
	if strtab == 0 || strsz == 0 {
		return nil
	}
	if strsz > maxStrtab {
		return fmt.Errorf("dynamic string table of %d bytes", strsz)
	}
	off, err := vaddrToOffset(f, strtab, strsz)
	if err != nil {
		return fmt.Errorf("DT_STRTAB: %w", err)
	}
	strs := make([]byte, strsz)
	if _, err := r.ReadAt(strs, int64(off)); err != nil {
		return fmt.Errorf("reading dynamic string table: %w", err)
	}
	str := func(i uint64) (string, error) {
		if i >= strsz {
			return "", fmt.Errorf("dynamic string offset %d beyond table of %d bytes", i, strsz)
		}
		s := strs[i:]
		if j := bytes.IndexByte(s, 0); j >= 0 {
			s = s[:j]
		}
		return string(s), nil
	}
	var rpath []string
	hasRunpath := false
	for _, tv := range ents {
		switch tv.tag {
		case elf.DT_NEEDED, elf.DT_SONAME, elf.DT_RPATH, elf.DT_RUNPATH:
		default:
			continue
		}
		s, err := str(tv.val)
		if err != nil {
			return fmt.Errorf("%v: %w", tv.tag, err)
		}
		switch tv.tag {
		case elf.DT_NEEDED:
			info.Needed = append(info.Needed, s)
		case elf.DT_SONAME:
			info.Soname = s
		case elf.DT_RPATH:
			rpath = append(rpath, splitPath(s)...)
		case elf.DT_RUNPATH:
			hasRunpath = true
			info.Runpath = append(info.Runpath, splitPath(s)...)
		}
	}
	if !hasRunpath {
		info.Rpath = rpath
	}
	info.UsesIconv = bytes.Contains(strs, []byte("\x00iconv_open\x00"))
	return nil
}

// vaddrToOffset maps a virtual address to a file offset through the PT_LOAD
// segments, as ld.so finds DT_STRTAB in a mapped object.
func vaddrToOffset(f *elf.File, vaddr, size uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if vaddr >= p.Vaddr && vaddr-p.Vaddr < p.Filesz && size <= p.Filesz-(vaddr-p.Vaddr) {
			return p.Off + (vaddr - p.Vaddr), nil
		}
	}
	return 0, errors.New("address not in any PT_LOAD segment")
}

// splitPath splits a ':'-separated search path, dropping empty elements.
func splitPath(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ":") {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}
