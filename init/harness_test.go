package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/image/initrd"
	"github.com/uniforge/packer-plugin-unikernel/image/squashfs"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// testKernelAlias names the cloud kernel bundle in the test cache, so that
// only the first run downloads and imports it.
const testKernelAlias = "uni-init-test-cloud"

// bootModules are the modules a QEMU guest with a virtio disk and NIC needs.
var bootModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "squashfs"}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	testtool.Need(t, tools...)
}

// testCache is os.UserCacheDir()/uni-test/<sub>.
func testCache(t *testing.T, sub string) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "uni-test", sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cloudKernel returns the distribution cloud kernel as a bundle, through the
// kernel package, downloading and importing it on the first run only.
func cloudKernel(t *testing.T) *kernel.Bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache := kernel.WithCacheDir(testCache(t, "kernel-bundles"))
	b, err := kernel.Resolve(ctx, testKernelAlias, cache, kernel.WithoutDistro())
	if err == nil {
		return b
	}
	if !errors.Is(err, kernel.ErrNotFound) {
		t.Fatal(err)
	}
	requireTools(t, "apt-get")
	debs := testCache(t, "kernel-debs")
	deb, err := distro.DownloadCloudKernel(ctx, debs)
	if err != nil {
		cached, _ := filepath.Glob(filepath.Join(debs, "linux-image-*-cloud-*.deb"))
		if len(cached) == 0 {
			t.Fatalf("downloading the cloud kernel: %v", err)
		}
		deb = cached[len(cached)-1]
	}
	b, err = kernel.Import(ctx, deb, cache, kernel.WithName(testKernelAlias))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goBuild builds a static binary the way the image builder builds the init.
func goBuild(t *testing.T, dir, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
}

// buildInit builds this package, the init.
func buildInit(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "init")
	wd, _ := os.Getwd()
	goBuild(t, wd, ".", out)
	return out
}

// buildGoProgram builds a one-file Go program from source.
func buildGoProgram(t *testing.T, dir, name, source string) string {
	t.Helper()
	src := filepath.Join(dir, name+"-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	goBuild(t, src, ".", out)
	return out
}

func hostFile(t *testing.T, p string) rootfs.Entry {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return rootfs.Entry{Mode: 0o755, HostPath: p, Size: fi.Size()}
}

func mustAdd(t *testing.T, tr *rootfs.Tree, e rootfs.Entry) {
	t.Helper()
	if err := tr.Add(e); err != nil {
		t.Fatal(err)
	}
}

// writeRootfs makes a squashfs holding the app at /app, a working
// directory, the mount points the init needs and an empty resolv.conf. It
// returns the image path and its superblock digest.
func writeRootfs(t *testing.T, dir, app string) (string, string) {
	t.Helper()
	tr := rootfs.NewTree()
	e := hostFile(t, app)
	e.Path = "/app"
	mustAdd(t, tr, e)
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/work"} {
		mustAdd(t, tr, rootfs.Entry{Path: d, Mode: fs.ModeDir | 0o755})
	}
	mustAdd(t, tr, rootfs.Entry{Path: "/etc/resolv.conf", Mode: 0o644})
	img := filepath.Join(dir, "rootfs.img")
	if err := squashfs.WriteFile(context.Background(), img, tr); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, superblockSize)
	n, _ := io.ReadFull(f, buf)
	sum := sha256.Sum256(buf[:n])
	return img, "sha256:" + hex.EncodeToString(sum[:])
}

// writeInitrd writes an initrd with the real writer (image.WriteInitrd),
// holding initBin as the init and, when b is set, the boot modules.
func writeInitrd(t *testing.T, out, initBin string, cfg spec.InitConfig, b *kernel.Bundle, c initrd.Compression) {
	t.Helper()
	err := image.WriteInitrd(context.Background(), out, b, cfg, 0,
		image.WithInitFile(initBin), image.WithModules(bootModules...), image.WithInitrdCompression(c))
	if err != nil {
		t.Fatal(err)
	}
}

// freePort finds a TCP port free on the host loopback for a hostfwd.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type vmSpec struct {
	kernel, initrd, rootfs string
	hostPort               int // forwarded to guest port 8080 when non-zero
	append                 string
	onExec                 func() // called when the exec marker is seen
}

type bootResult struct {
	console  string
	status   int           // from the exit marker, -1 without one
	execAt   time.Duration // host time from QEMU start to the exec marker
	total    time.Duration // host time from QEMU start to QEMU's exit
	timeline map[string]float64
}

var (
	exitLine = regexp.MustCompile(regexp.QuoteMeta(spec.ExitMarker) + `(\d+)`)
	markLine = regexp.MustCompile(`uni: t=([0-9.]+)ms (.*)`)
)

// bootVM boots the VM under TCG as the CI does and returns what the console
// said.
func bootVM(t *testing.T, v vmSpec) bootResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-accel", "tcg", "-cpu", "max", "-m", "128", "-nographic", "-no-reboot",
		"-kernel", v.kernel, "-initrd", v.initrd,
		"-append", strings.TrimSpace("console=ttyS0 quiet panic=-1 " + v.append)}
	if v.rootfs != "" {
		args = append(args, "-drive", "file="+v.rootfs+",if=virtio,format=raw,readonly=on")
	}
	netdev := "user,id=n0"
	if v.hostPort != 0 {
		netdev += ",hostfwd=tcp:127.0.0.1:" + strconv.Itoa(v.hostPort) + "-:8080"
	}
	args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0")
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := bootResult{status: -1, timeline: map[string]float64{}}
	var all strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		all.WriteString(line + "\n")
		if strings.Contains(line, spec.ExecMarker) && res.execAt == 0 {
			res.execAt = time.Since(start)
			if v.onExec != nil {
				go v.onExec()
			}
		}
		if m := exitLine.FindStringSubmatch(line); m != nil {
			res.status, _ = strconv.Atoi(m[1])
		}
		if m := markLine.FindStringSubmatch(line); m != nil {
			ms, _ := strconv.ParseFloat(m[1], 64)
			res.timeline[m[2]] = ms
		}
	}
	err = cmd.Wait()
	res.total = time.Since(start)
	res.console = all.String()
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not power off within the timeout; console:\n%s", res.console)
	}
	if err != nil {
		t.Fatalf("qemu: %v; console:\n%s", err, res.console)
	}
	return res
}
