package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// bootLayout makes a verified direct-boot layout around the Debian kernel
// and the test init, packed as /init by the real initrd writer beside the
// init config the layout's Verify checks. The rootfs is a placeholder: the
// test init does not mount it.
func bootLayout(t *testing.T) *layout.Layout {
	t.Helper()
	testtool.NeedVM(t)
	kernel, err := os.ReadFile(testKernel(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := layouttest.Config()
	cfg.ExposedPorts = nil
	cfg.Cmdline = "console=ttyS0 panic=-1 quiet"
	l := openLayout(t, cfg, layouttest.Files{Kernel: kernel, Initrd: map[string][]byte{"/init": testInit(t)}})
	if err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRunBootsAndReturnsTheAppExitStatus(t *testing.T) {
	l := bootLayout(t)
	for _, want := range []int{3, 0} {
		var console testtool.Buffer
		var execAt time.Time
		start := time.Now()
		status, err := Run(context.Background(), l,
			WithAccel(AccelAuto), WithConsole(&console), WithTimeout(2*time.Minute),
			WithKernelArgs("unitest=exit", "unitest_status="+strconv.Itoa(want)),
			WithExecHook(func(seen time.Time) { execAt = seen }))
		if err != nil {
			t.Fatalf("Run: %v\nconsole:\n%s", err, console.String())
		}
		if status != want {
			t.Fatalf("exit status %d, want %d\nconsole:\n%s", status, want, console.String())
		}
		if !strings.Contains(console.String(), "uni: exec /x") {
			t.Fatalf("console was not streamed:\n%s", console.String())
		}
		if execAt.IsZero() {
			t.Fatal("exec hook never ran")
		}
		t.Logf("status %d: exec line after %v, VM gone after %v", status, execAt.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
}

func TestRunReportsAGuestThatDiesWithoutExitLine(t *testing.T) {
	l := bootLayout(t)
	_, err := Run(context.Background(), l, WithTimeout(2*time.Minute), WithKernelArgs("unitest=panic"))
	if err == nil {
		t.Fatal("a guest that panicked gave no error")
	}
	// The test init returning makes the kernel panic; its reason must be
	// quoted even though the trace after it is longer than the tail kept.
	for _, want := range []string{"without the init's", "the kernel panicked", "Attempted to kill init"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestRunStopsAGuestThatPrintsItsStatusButDoesNotPowerOff(t *testing.T) {
	l := bootLayout(t)
	shortGrace := func(o *options) { o.poweroffGrace = time.Second }
	status, err := Run(context.Background(), l, WithTimeout(2*time.Minute), shortGrace,
		WithKernelArgs("unitest=hang", "unitest_status=5"))
	if err != nil || status != 5 {
		t.Fatalf("hung guest after its exit line: status %d, %v; want 5 and no error", status, err)
	}
	if left := qemuPidsUsing(t, l.Dir()); len(left) != 0 {
		t.Fatalf("QEMU left behind: pids %v", left)
	}
}

func TestRunStopsQEMUWhenCancelled(t *testing.T) {
	l := bootLayout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	execSeen := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, l, WithTimeout(2*time.Minute), WithKernelArgs("unitest=sleep"),
			WithExecHook(func(time.Time) { once.Do(func() { close(execSeen) }) }))
		done <- err
	}()
	select {
	case <-execSeen:
	case err := <-done:
		t.Fatalf("Run ended before the guest started sleeping: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("guest never printed its exec line")
	}
	pids := qemuPidsUsing(t, l.Dir())
	if len(pids) != 1 {
		t.Fatalf("while the guest sleeps, QEMU processes using %s: %v, want one", l.Dir(), pids)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Run returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if left := qemuPidsUsing(t, l.Dir()); len(left) != 0 {
		t.Fatalf("QEMU left behind after cancel: pids %v", left)
	}
	if _, err := os.Stat("/proc/" + pids[0]); err == nil {
		t.Fatalf("QEMU pid %s still exists (zombie not reaped?)", pids[0])
	}
}

// qemuPidsUsing lists the processes whose command line names the layout
// dir, which is unique to the test.
func qemuPidsUsing(t *testing.T, layout string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		testtool.Missing(t, "/proc to look for QEMU processes: %v", err)
	}
	var pids []string
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" {
			continue // not a process
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		if bytes.Contains(cmdline, []byte(layout)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// firmwareCopy copies the host's OVMF code and vars into a dir of the
// test's own, so the test can check that the vars template stays unchanged.
func firmwareCopy(t *testing.T) string {
	t.Helper()
	fw, err := findOVMF(DefaultFirmwareDirs())
	if err != nil || fw.Code == "" {
		testtool.Missing(t, "split OVMF firmware (apt-get install ovmf): %v", err)
	}
	dir := t.TempDir()
	for src, name := range map[string]string{fw.Code: "OVMF_CODE.fd", fw.Vars: "OVMF_VARS.fd"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cancelOnConsole cancels a run once the console shows want.
type cancelOnConsole struct {
	testtool.Buffer
	want   string
	cancel context.CancelFunc
}

func (c *cancelOnConsole) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	if strings.Contains(c.String(), c.want) {
		c.cancel()
	}
	return n, err
}

// No disk writer here (that is the image package's), so this boots OVMF on
// an empty disk: it proves the firmware arrangement runs and prints to the
// serial console, and that the vars template is left alone.
func TestRunUEFIStartsOVMFOnTheSerialConsole(t *testing.T) {
	l := bootLayout(t)
	fwDir := firmwareCopy(t)
	varsBefore, _ := os.ReadFile(filepath.Join(fwDir, "OVMF_VARS.fd"))
	if err := os.WriteFile(filepath.Join(l.Dir(), spec.DiskFile), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	console := &cancelOnConsole{want: "BdsDxe", cancel: cancel}
	_, err := Run(ctx, l, WithBoot(BootUEFI), WithFirmwareDirs(fwDir), WithConsole(console), WithTimeout(2*time.Minute))
	if !errors.Is(err, context.Canceled) || !strings.Contains(console.String(), "BdsDxe") {
		t.Fatalf("UEFI boot: %v\nconsole:\n%s", err, console.String())
	}
	varsAfter, _ := os.ReadFile(filepath.Join(fwDir, "OVMF_VARS.fd"))
	if !bytes.Equal(varsBefore, varsAfter) {
		t.Fatal("the OVMF vars template was modified")
	}
	if left := qemuPidsUsing(t, l.Dir()); len(left) != 0 {
		t.Fatalf("QEMU left behind: pids %v", left)
	}
}

func TestRunTimesOut(t *testing.T) {
	l := bootLayout(t)
	start := time.Now()
	_, err := Run(context.Background(), l, WithTimeout(3*time.Second), WithKernelArgs("unitest=sleep"))
	if err == nil || !strings.Contains(err.Error(), "timed out after 3s") {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Fatalf("timeout of 3s took %v", elapsed)
	}
	if left := qemuPidsUsing(t, l.Dir()); len(left) != 0 {
		t.Fatalf("QEMU left behind: pids %v", left)
	}
}
