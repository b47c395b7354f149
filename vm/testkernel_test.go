package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// The kernel the boot tests run: Debian 12's cloud kernel, fetched once
// into the user's cache.
const testKernelPackage = "linux-image-6.1.0-56-cloud-amd64"

// testKernel returns the path of a bzImage, downloading and extracting
// the Debian package on first use.
func testKernel(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("user cache dir: %v", err)
	}
	dir := filepath.Join(cache, "uni-test", testKernelPackage)
	kernel := filepath.Join(dir, "vmlinuz")
	if isFile(kernel) {
		return kernel
	}
	testtool.NeedDownload(t, "the Debian kernel package "+testKernelPackage)
	testtool.Need(t, "apt-get", "dpkg-deb")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	run(t, work, nil, "apt-get", "download", testKernelPackage)
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s gave %q", testKernelPackage, debs)
	}
	extracted := filepath.Join(work, "x")
	run(t, work, nil, "dpkg-deb", "-x", debs[0], extracted)
	images, _ := filepath.Glob(filepath.Join(extracted, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		t.Fatalf("%s holds kernels %q, want one", debs[0], images)
	}
	// Rename within one filesystem: a concurrent test sees all or nothing.
	if err := os.Rename(images[0], kernel); err != nil {
		t.Fatal(err)
	}
	return kernel
}

// testInitSource is a stand-in for the real init: it prints the markers the
// runner looks for. Kernel arguments that the kernel does not know reach it
// as environment: unitest=exit|sleep|panic|hang and unitest_status=N.
const testInitSource = `package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func main() {
	os.Mkdir("/dev", 0o755)
	syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stdout
	}
	fmt.Fprintln(console, "uni: exec /x")
	switch os.Getenv("unitest") {
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "panic":
		fmt.Fprintln(console, "test init: returning without an exit line")
		return
	}
	fmt.Fprintln(console, "uni: exit status "+os.Getenv("unitest_status"))
	if os.Getenv("unitest") == "hang" {
		for {
			time.Sleep(time.Hour)
		}
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
`

// testInit builds the test init statically and returns it.
func testInit(t *testing.T) []byte {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module testinit\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(testInitSource), 0o644)
	out := filepath.Join(t.TempDir(), "init")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
	run(t, src, env, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func run(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}
