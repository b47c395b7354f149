package kernel

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetupHeader(t *testing.T) {
	// pref_address 16 MiB + init_size 32 MiB + initrd 8 MiB + slack 16 MiB = 72 MiB, rounded to 80 MiB.
	img := fakeBzImage("9.9-test", 16<<20, 32<<20, 0)
	p := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := MinMemory(p); err != nil || m != 80<<20 {
		t.Errorf("MinMemory: %d MiB, %v; want 80 MiB", m>>20, err)
	}
	if rel, arch, err := readBzImageRelease(p); err != nil || rel != "9.9-test" || arch != "amd64" {
		t.Errorf("release %q arch %q err %v", rel, arch, err)
	}
	b := &Bundle{Dir: t.TempDir()}
	if err := os.WriteFile(b.KernelPath(), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := b.MinMemory(); err != nil || m != 80<<20 {
		t.Errorf("Bundle.MinMemory: %d MiB, %v", m>>20, err)
	}

	bad := map[string][]byte{
		"short":          img[:0x100],
		"no HdrS":        bytes.Replace(bytes.Clone(img), []byte("HdrS"), []byte("HdrX"), 1),
		"old protocol":   withUint16(img, bzVersionOffset, 0x0209),
		"huge address":   withUint64(img, bzPrefAddrOffset, 1<<63),
		"no version ptr": withUint16(img, bzKernelVerOffset, 0),
	}
	for name, data := range bad {
		h, err := readSetupHeader(bytes.NewReader(data), true)
		if err == nil {
			_, err = h.minMemory()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := MinMemory(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("MinMemory of a missing file succeeded")
	}
}

func withUint16(img []byte, off int, v uint16) []byte {
	c := bytes.Clone(img)
	binary.LittleEndian.PutUint16(c[off:], v)
	return c
}

func withUint64(img []byte, off int, v uint64) []byte {
	c := bytes.Clone(img)
	binary.LittleEndian.PutUint64(c[off:], v)
	return c
}

// FuzzSetupHeader feeds arbitrary bytes to the bzImage header parser: it
// never panics, and what it accepts is sane (a release usable as a path
// element, a memory floor that is a positive multiple of 16 MiB).
func FuzzSetupHeader(f *testing.F) {
	f.Add(fakeBzImage("6.1.0-57-cloud-amd64", 0x1000000, 0x2a3c000, 0))
	f.Add(fakeBzImage("x", 0, 0, 0))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, withRelease := range []bool{false, true} {
			h, err := readSetupHeader(bytes.NewReader(data), withRelease)
			if err != nil {
				continue
			}
			if withRelease && (h.release == "" || strings.ContainsAny(h.release, "/\\ \x00")) {
				t.Errorf("accepted release %q", h.release)
			}
			if h.arch != "amd64" && h.arch != "i386" {
				t.Errorf("arch %q", h.arch)
			}
			m, err := h.minMemory()
			if err == nil && (m <= 0 || m%memoryStep != 0) {
				t.Errorf("minMemory %d", m)
			}
		}
	})
}
