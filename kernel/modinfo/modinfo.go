// Package modinfo reads what a Linux kernel module says about itself: the
// key=value strings of its ELF ".modinfo" section (name, depends, alias …),
// and the kernel's modules.builtin list. It replaces depmod and modinfo for
// building module tables on any host.
package modinfo

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Info is the part of a module's .modinfo that loading it needs.
type Info struct {
	Name     string   // name= (as the kernel knows it, with '_')
	Depends  []string // depends=, in the module's order
	Aliases  []string // every alias=, in the module's order
	SoftDeps []string // every softdep= ("pre: crc32c"), verbatim
	License  string
	Vermagic string
}

// maxSection bounds the .modinfo section read into memory; real ones are a few KB.
const maxSection = 16 << 20

// Parse decodes the contents of a .modinfo section: NUL-separated
// key=value strings. Strings without '=' (padding, junk) are ignored.
func Parse(section []byte) *Info {
	info := &Info{}
	for _, field := range bytes.Split(section, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		switch key {
		case "name":
			info.Name = NormalizeName(value)
		case "depends":
			for _, d := range strings.Split(value, ",") {
				if d = strings.TrimSpace(d); d != "" {
					info.Depends = append(info.Depends, NormalizeName(d))
				}
			}
		case "alias":
			info.Aliases = append(info.Aliases, value)
		case "softdep":
			info.SoftDeps = append(info.SoftDeps, value)
		case "license":
			info.License = value
		case "vermagic":
			info.Vermagic = value
		}
	}
	return info
}

// ReadELF reads the .modinfo section of the module r holds. A module
// without name= (kernels before 4.x) gets none here: see NameFromPath.
func ReadELF(r io.ReaderAt) (*Info, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section: not a kernel module")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > maxSection {
		return nil, fmt.Errorf(".modinfo section: bad type or size %d", sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo section: %w", err)
	}
	return Parse(data), nil
}

// ReadFile reads the .modinfo of the uncompressed module at p, naming the
// module after its file when the section has no name=.
func ReadFile(p string) (*Info, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := ReadELF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if info.Name == "" {
		info.Name = NameFromPath(p)
	}
	return info, nil
}

// NormalizeName spells a module name as the kernel does: '-' becomes '_'.
func NormalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// NameFromPath derives a module name from its file name:
// ".../virtio-rng.ko.xz" is "virtio_rng".
func NameFromPath(p string) string {
	base := path.Base(strings.ReplaceAll(p, "\\", "/"))
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return NormalizeName(strings.TrimSuffix(base, ".ko"))
}

// ParseBuiltin reads modules.builtin (one "kernel/…/name.ko" per line) and
// returns the built-in module names, sorted and without duplicates.
func ParseBuiltin(r io.Reader) ([]string, error) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		seen[NameFromPath(line)] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
