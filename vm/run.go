package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

const (
	defaultMemoryBytes = 128 << 20
	consoleTailLines   = 20
	stderrTailBytes    = 4096
)

var (
	errTimeout     = errors.New("timed out")
	errNoPoweroff  = errors.New("guest printed its exit status but did not power off")
	errQEMUMissing = errors.New("QEMU not found: install the package qemu-system-x86 (apt-get install qemu-system-x86)")
)

// Run boots the image layout in layoutDir under QEMU and returns the app's
// exit status, read from the init's console line spec.ExitMarker. It stops
// QEMU (SIGTERM, then SIGKILL after the stop grace) when ctx is cancelled,
// and never returns while QEMU still runs.
func Run(ctx context.Context, layoutDir string, opts ...Option) (int, error) {
	o := newOptions(opts)
	cfg, err := LoadConfig(layoutDir)
	if err != nil {
		return -1, err
	}
	scratch, err := os.MkdirTemp(o.scratchDir, "uni-vm-")
	if err != nil {
		return -1, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)

	m, err := plan(layoutDir, cfg, o, scratch)
	if err != nil {
		return -1, err
	}
	args, err := QEMUArgs(m)
	if err != nil {
		return -1, err
	}
	qemu, err := exec.LookPath(o.qemu)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", o.qemu, errQEMUMissing)
	}
	return runQEMU(ctx, qemu, args, o)
}

// LoadConfig reads config.json of an image layout.
func LoadConfig(layoutDir string) (spec.ImageConfig, error) {
	path := filepath.Join(layoutDir, spec.ConfigFile)
	var cfg spec.ImageConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("image config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("image config %s: %w", path, err)
	}
	return cfg, nil
}

// plan resolves the options, the image config and the host into a Machine.
func plan(layoutDir string, cfg spec.ImageConfig, o options, scratch string) (Machine, error) {
	m := Machine{
		Boot:      o.boot,
		MemoryMiB: memoryMiB(firstNonZero(o.memoryBytes, cfg.MemoryBytes, defaultMemoryBytes)),
		CPUs:      int(firstNonZero(int64(o.cpus), int64(cfg.CPUs), 1)),
		Ports:     DefaultPorts(cfg),
	}
	if o.portsSet {
		m.Ports = o.ports
	}
	in := func(name string) string { return filepath.Join(layoutDir, name) }
	switch o.boot {
	case BootDirect:
		m.Kernel, m.Initrd, m.Rootfs = in(spec.KernelFile), in(spec.InitrdFile), in(spec.RootfsFile)
		if err := requireFiles(m.Kernel, m.Initrd, m.Rootfs); err != nil {
			return m, fmt.Errorf("direct boot of %s: %w", layoutDir, err)
		}
		m.Cmdline = strings.Join(append([]string{cfg.Cmdline}, o.extraCmdline...), " ")
	case BootUEFI, BootBIOS:
		m.Disk = in(spec.DiskFile)
		if err := requireFiles(m.Disk); err != nil {
			return m, fmt.Errorf("%s boot of %s needs %s, a disk image: build the image with --disk (%w)", o.boot, layoutDir, spec.DiskFile, err)
		}
		if len(o.extraCmdline) > 0 {
			return m, fmt.Errorf("%s boot: extra kernel arguments %q work with direct boot only (the disk's loader has its own command line)", o.boot, o.extraCmdline)
		}
	default:
		return m, fmt.Errorf("boot %q: want direct, uefi or bios", o.boot)
	}
	if o.boot == BootUEFI {
		fw, err := findOVMF(o.firmwareDirs)
		if err != nil {
			return m, err
		}
		if m.Firmware, err = privateVars(fw, scratch); err != nil {
			return m, err
		}
	}
	accel, err := PickAccel(o.accel)
	if err != nil {
		return m, err
	}
	m.Accel = accel
	if err := checkNoDuplicateHostPorts(m.Ports); err != nil {
		return m, err
	}
	if err := checkPortsFree(m.Ports); err != nil {
		return m, err
	}
	return m, nil
}

func firstNonZero(values ...int64) int64 {
	for _, v := range values {
		if v != 0 {
			return v
		}
	}
	return 0
}

// memoryMiB rounds up to QEMU's unit, so a request is never cut short.
func memoryMiB(bytes int64) int64 { return (bytes + 1<<20 - 1) >> 20 }

func requireFiles(paths ...string) error {
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
	}
	return nil
}

// runQEMU starts QEMU, streams and scans its console, and waits for it.
func runQEMU(ctx context.Context, qemu string, args []string, o options) (int, error) {
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if o.timeout > 0 {
		var cancelTimeout context.CancelFunc
		runCtx, cancelTimeout = context.WithTimeoutCause(runCtx, o.timeout, fmt.Errorf("%w after %s", errTimeout, o.timeout))
		defer cancelTimeout()
	}

	scanner := newConsoleScanner(consoleTailLines, o.onExec)
	stderr := &tailBuffer{max: stderrTailBytes}
	cmd := exec.CommandContext(runCtx, qemu, args...)
	cmd.Stdin = nil
	cmd.Stdout = &consoleTee{scanner: scanner, console: o.console}
	cmd.Stderr = stderr
	cmd.SysProcAttr = childProcAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = o.stopGrace
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("starting %s: %w", qemu, err)
	}

	// A guest that prints its status and then hangs instead of powering off
	// is stopped after a grace period; its status still counts.
	go func() {
		select {
		case <-scanner.exitSeen():
		case <-runCtx.Done():
			return
		}
		select {
		case <-time.After(o.poweroffGrace):
			stop(errNoPoweroff)
		case <-runCtx.Done():
		}
	}()

	waitErr := cmd.Wait()
	scanner.flush()
	if status, ok := scanner.exitStatus(); ok {
		return status, nil
	}
	if cause := context.Cause(runCtx); cause != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("vm stopped: %w", context.Cause(ctx))
		}
		return -1, fmt.Errorf("vm %w; %s", cause, describeEnd(scanner, stderr))
	}
	return -1, fmt.Errorf("QEMU exited (%v) without the init's %q line; %s", exitDescription(waitErr), strings.TrimSpace(spec.ExitMarker), describeEnd(scanner, stderr))
}

func exitDescription(waitErr error) string {
	if waitErr == nil {
		return "status 0"
	}
	return waitErr.Error()
}

// describeEnd quotes the console's last lines and QEMU's own complaints.
func describeEnd(scanner *consoleScanner, stderr *tailBuffer) string {
	var b strings.Builder
	lines := scanner.lastLines()
	if len(lines) == 0 {
		b.WriteString("the console stayed empty")
	} else {
		b.WriteString("last console lines:")
		for _, l := range lines {
			b.WriteString("\n  | " + l)
		}
	}
	if panicLine := scanner.kernelPanic(); panicLine != "" {
		b.WriteString("\nthe kernel panicked: " + strings.TrimSpace(panicLine))
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		b.WriteString("\nQEMU said: " + msg)
	}
	return b.String()
}

// consoleTee feeds the scanner and streams to the user's console. A console
// that fails (a closed pipe) is dropped rather than stopping the VM.
type consoleTee struct {
	scanner *consoleScanner
	console io.Writer
}

func (t *consoleTee) Write(p []byte) (int, error) {
	t.scanner.Write(p)
	if t.console != nil {
		if _, err := t.console.Write(p); err != nil {
			t.console = nil
		}
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
