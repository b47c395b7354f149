package format

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/vm"
)

// helloDisk builds example/hello-go with `uni build --disk` (uni and the
// app built from this checkout) and returns its disk.img.
func helloDisk(t *testing.T) string {
	t.Helper()
	testtool.Need(t, "go")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	uni := filepath.Join(tmp, "uni")
	ctxDir := filepath.Join(tmp, "hello-go")
	for _, c := range []*exec.Cmd{
		exec.Command("go", "build", "-o", uni, "./cmd/uni"),
		exec.Command("cp", "-r", filepath.Join(root, "example", "hello-go"), ctxDir),
	} {
		c.Dir = root
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
	}
	app := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "hello"), "./example/hello-go")
	app.Dir, app.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := app.CombinedOutput(); err != nil {
		t.Fatalf("building hello-go: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "out")
	build := exec.Command(uni, "build", "--disk", "-o", out, ctxDir)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("uni build --disk: %v\n%s", err, b)
	}
	return filepath.Join(out, "disk.img")
}

// TestConvertedDisksBoot boots the qcow2, vmdk, vhd and vhdx of a real
// image under QEMU with SeaBIOS, the disk attached in its own format the
// way vm attaches disk.img, and waits for the app to answer on its port.
func TestConvertedDisksBoot(t *testing.T) {
	testtool.NeedVM(t)
	testtool.Need(t, "qemu-img")
	disk := helloDisk(t)
	dir := t.TempDir()
	accel, err := vm.PickAccel(vm.AccelAuto)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, qfmt string }{
		{"qcow2", "qcow2"}, {"vmdk", "vmdk"}, {"vhd", "vpc"}, {"vhdx", "vhdx"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fm, _ := Lookup(c.name)
			out := filepath.Join(dir, "hello"+fm.Ext)
			convert(t, c.name, disk, out, Options{Compress: c.name == "qcow2"})
			bootAndGet(t, accel, out, c.qfmt)
		})
	}
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func bootAndGet(t *testing.T, accel, diskPath, qfmt string) {
	t.Helper()
	port := freePort(t)
	args, err := vm.QEMUArgs(vm.Machine{
		Boot: vm.BootBIOS, Accel: accel, MemoryMiB: 256, CPUs: 1, Disk: diskPath,
		Ports: []vm.PortForward{{HostPort: port, GuestPort: 8080, Protocol: vm.TCP}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// vm attaches disk.img as raw; attach the converted disk in its format.
	replaced := false
	for i, a := range args {
		if strings.HasPrefix(a, "if=none,id=disk,format=raw,") {
			args[i] = strings.Replace(a, "format=raw", "format="+qfmt, 1)
			replaced = true
		}
	}
	if !replaced {
		t.Fatalf("no disk drive in %q", args)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var console lockedBuf
	cmd.Stdout, cmd.Stderr = &console, &console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "Hello from Go") {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s (%s): the app did not answer on %s; console:\n%s", diskPath, qfmt, url, console.String())
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
