package disk

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

// bootMarker is printed by the test init; the kernel never prints it
// itself, since it is in no command line.
const bootMarker = "uni-disk-test: init reached"

const testInitSource = `package main

import (
	"os"
	"syscall"
)

func main() {
	con, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		os.Mkdir("/dev", 0o755)
		syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
		con, err = os.OpenFile("/dev/console", os.O_WRONLY, 0)
	}
	if err == nil {
		con.WriteString("\n` + bootMarker + `\n")
		con.Sync()
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
`

// testBundle resolves the default kernel bundle (the distro's cloud
// kernel and GRUB images) into a test cache kept across runs.
func testBundle(t *testing.T) *kernel.Bundle {
	t.Helper()
	needTool(t, "apt-get", "grub-mkimage")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := kernel.Resolve(ctx, kernel.DefaultName, kernel.WithCacheDir(filepath.Join(cache, "uni-test", "kernels")))
	if err != nil {
		t.Fatalf("kernel bundle: %v", err)
	}
	return b
}

// testInitrd builds the test init statically and packs it as /init in an
// uncompressed newc cpio.
func testInitrd(t *testing.T) string {
	t.Helper()
	needTool(t, "cpio", "go")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	root := filepath.Join(dir, "root")
	for _, d := range []string{src, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module testinit\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(testInitSource), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(root, "init"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building test init: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	out, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	pack := exec.Command("cpio", "--quiet", "-o", "-H", "newc")
	pack.Dir = root
	pack.Stdin = strings.NewReader("init\n")
	pack.Stdout = out
	var stderr bytes.Buffer
	pack.Stderr = &stderr
	if err := pack.Run(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, stderr.Bytes())
	}
	return initrd
}

// bootDisk writes a disk from the bundle and the test initrd.
func bootDisk(t *testing.T) string {
	t.Helper()
	needTool(t, "qemu-system-x86_64")
	b := testBundle(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.img")
	writeRandom(t, rootfs, mib, 4)
	in := Inputs{
		Kernel: b.KernelPath(), Initrd: testInitrd(t), Rootfs: rootfs,
		Cmdline:       "console=ttyS0 panic=-1",
		BIOSBootImage: b.BootFile(kernel.BIOSBootImage),
		BIOSCoreImage: b.BootFile(kernel.BIOSCoreImage),
		EFIImage:      b.BootFile(kernel.EFIImage),
		DataSize:      4 * mib,
	}
	img := filepath.Join(dir, "disk.img")
	if err := Write(context.Background(), img, in); err != nil {
		t.Fatal(err)
	}
	return img
}

// bootQEMU boots img with extra firmware args and waits for the marker.
func bootQEMU(t *testing.T, img string, firmware ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := append([]string{"-accel", "tcg", "-cpu", "max", "-m", "256", "-nographic", "-no-reboot",
		"-drive", "file=" + img + ",format=raw,if=virtio"}, firmware...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var console bytes.Buffer
	cmd.Stdout = &console
	cmd.Stderr = &console
	start := time.Now()
	err := cmd.Run()
	t.Logf("qemu ran %.1fs", time.Since(start).Seconds())
	if !strings.Contains(console.String(), bootMarker) {
		t.Fatalf("marker %q not on the serial console (qemu: %v); console:\n%s", bootMarker, err, tail(console.String(), 4000))
	}
	if err != nil {
		t.Errorf("qemu: %v", err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestBootBIOS(t *testing.T) {
	testtool.NeedVM(t)
	bootQEMU(t, bootDisk(t))
}

func TestBootUEFI(t *testing.T) {
	testtool.NeedVM(t)
	code, vars := findOVMF(t)
	img := bootDisk(t)
	varsCopy := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	data, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(varsCopy, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bootQEMU(t, img,
		"-drive", "if=pflash,format=raw,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,file="+varsCopy)
}

// findOVMF picks a plain (not secure-boot) OVMF build and its matching
// variable store.
func findOVMF(t *testing.T) (code, vars string) {
	t.Helper()
	for _, pair := range [][2]string{{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"}, {"OVMF_CODE.fd", "OVMF_VARS.fd"}} {
		c, v := filepath.Join("/usr/share/OVMF", pair[0]), filepath.Join("/usr/share/OVMF", pair[1])
		if _, err := os.Stat(c); err == nil {
			if _, err := os.Stat(v); err == nil {
				return c, v
			}
		}
	}
	testtool.Missing(t, "OVMF firmware in /usr/share/OVMF (apt-get install ovmf)")
	return "", ""
}
