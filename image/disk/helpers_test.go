package disk

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// grubModules are the modules baked into both GRUB images, as the kernel
// bundle builds them.
var grubModules = []string{"part_gpt", "part_msdos", "fat", "search", "search_fs_file", "normal", "linux", "echo", "test"}

const grubEmbeddedConfig = "search --no-floppy --file --set=root /uni/grub.cfg\nset prefix=($root)/uni\n"

// grubImages are the boot loader files a disk needs.
type grubImages struct{ boot, core, efi string }

// needTool skips the test when a host tool is missing.
func needTool(t testing.TB, names ...string) {
	t.Helper()
	testtool.Need(t, names...)
}

func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// makeGRUB builds boot.img, core.img and BOOTX64.EFI with grub-mkimage the
// way the kernel bundle does.
func makeGRUB(t testing.TB) grubImages {
	t.Helper()
	needTool(t, "grub-mkimage")
	const pcDir = "/usr/lib/grub/i386-pc"
	testtool.NeedFile(t, filepath.Join(pcDir, "boot.img"), "grub-pc-bin")
	testtool.NeedFile(t, "/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "embedded.cfg")
	if err := os.WriteFile(cfg, []byte(grubEmbeddedConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	g := grubImages{boot: filepath.Join(pcDir, "boot.img"), core: filepath.Join(dir, "core.img"), efi: filepath.Join(dir, "BOOTX64.EFI")}
	run(t, dir, "grub-mkimage", append([]string{"-O", "i386-pc", "-p", "/uni", "-c", cfg, "-o", g.core, "biosdisk"}, grubModules...)...)
	run(t, dir, "grub-mkimage", append([]string{"-O", "x86_64-efi", "-p", "/uni", "-c", cfg, "-o", g.efi}, grubModules...)...)
	return g
}

// writeRandom writes size pseudo-random bytes from a fixed seed.
func writeRandom(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeInputs makes inputs with made-up kernel, initrd and rootfs contents
// and real GRUB images: enough to check structure, not to boot.
func fakeInputs(t testing.TB, dir string) Inputs {
	t.Helper()
	g := makeGRUB(t)
	in := Inputs{
		Kernel: filepath.Join(dir, "kernel"), Initrd: filepath.Join(dir, "initrd"), Rootfs: filepath.Join(dir, "rootfs.img"),
		Cmdline:       "console=ttyS0 panic=-1 quiet",
		BIOSBootImage: g.boot, BIOSCoreImage: g.core, EFIImage: g.efi,
		DataSize: 5 * mib,
	}
	writeRandom(t, in.Kernel, 3*mib+123, 1)
	writeRandom(t, in.Initrd, 700*1024+7, 2)
	writeRandom(t, in.Rootfs, 2*mib+4096, 3)
	return in
}
