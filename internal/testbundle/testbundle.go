// Package testbundle makes a small kernel bundle for in-process tests of
// the assembler and the engine core: a bzImage header that describes a
// kernel (release, memory needs) with nothing to boot behind it, every
// default module built in, and the host's GRUB boot images. It is imported
// through kernel.Import like any directory bundle, so it exercises the real
// import and cache; it only cannot boot.
package testbundle

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

// Release is the test kernel's uname -r.
const Release = "6.0.0-unitest"

// MinMemory is what the test kernel's header asks for, rounded as the
// engine rounds: pref_address 16 MiB + init_size 40 MiB + initrd and slack.
const (
	prefAddress = 16 << 20
	initSize    = 40 << 20
)

// BzImage returns the bytes of a bzImage header for release.
func BzImage(release string) []byte {
	b := make([]byte, 0x1000)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x020f) // boot protocol 2.15
	binary.LittleEndian.PutUint16(b[0x236:], 1)      // XLF_KERNEL_64
	binary.LittleEndian.PutUint16(b[0x20e:], 0x400)  // kernel_version at 0x600
	copy(b[0x600:], release+" (test@uni) #1 SMP\x00")
	binary.LittleEndian.PutUint64(b[0x258:], prefAddress)
	binary.LittleEndian.PutUint32(b[0x260:], initSize)
	return b
}

// Dir writes the kernel tree of the test bundle under dir.
func Dir(t testing.TB, dir string) {
	t.Helper()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("boot/vmlinuz-"+Release, BzImage(Release))
	var builtin strings.Builder
	for _, m := range kernel.DefaultModules() {
		builtin.WriteString("kernel/drivers/test/" + m + ".ko\n")
	}
	write("lib/modules/"+Release+"/modules.builtin", []byte(builtin.String()))
}

// Bundle imports the test bundle into a cache of its own and returns it.
// It needs GRUB's tools and images, as every bundle import does.
func Bundle(t testing.TB) *kernel.Bundle {
	t.Helper()
	testtool.Need(t, "grub-mkimage")
	testtool.NeedFile(t, "/usr/lib/grub/i386-pc", "grub-pc-bin")
	testtool.NeedFile(t, "/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")
	src := t.TempDir()
	Dir(t, src)
	b, err := kernel.Import(context.Background(), src, kernel.WithCacheDir(t.TempDir()), kernel.WithName("test"))
	if err != nil {
		t.Fatalf("importing the test kernel bundle: %v", err)
	}
	return b
}
