package vm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

const (
	consoleTailLines = 20
	stderrTailBytes  = 4096
	// uefiMinMemory is the least RAM the UEFI path boots the default kernel
	// in: OVMF keeps a large share of a small guest, and GRUB's EFI loader
	// then fails to place the kernel (measured: 192 MiB fails, 256 MiB
	// boots; BIOS and direct boots need only what the kernel needs). It is
	// also the floor of a kernel whose header cannot be read.
	uefiMinMemory = 256 << 20
)

// uefiFloor is the least RAM a UEFI boot of the bzImage at kernelPath
// needs: GRUB must find room for the kernel's init_size (where it
// decompresses) beside what OVMF keeps. Fitted to two measurements, erring
// high: the Debian cloud kernel (init_size 51 MiB) fails at 192 MiB and
// boots at 256; linux-mini (init_size 15 MiB) fails at 96 and boots at
// 128. 64 MiB plus three times init_size, rounded up to 64 MiB, gives 256
// and 128.
func uefiFloor(kernelPath string) int64 {
	const step = 64 << 20
	initSize, err := bzImageInitSize(kernelPath)
	if err != nil {
		return uefiMinMemory
	}
	need := (64<<20 + 3*initSize + step - 1) / step * step
	return min(need, uefiMinMemory)
}

// bzImageInitSize reads init_size from an x86 bzImage's setup header.
func bzImageInitSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [0x264]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, err
	}
	if string(h[0x202:0x206]) != "HdrS" {
		return 0, fmt.Errorf("%s: not a bzImage", p)
	}
	return int64(binary.LittleEndian.Uint32(h[0x260:])), nil
}

var (
	errTimeout     = errors.New("timed out")
	errNoPoweroff  = errors.New("guest printed its exit status but did not power off")
	errQEMUMissing = errors.New("QEMU not found: install the package qemu-system-x86 (apt-get install qemu-system-x86)")
)

// MinMemory is the least guest RAM, in bytes, that a boot mode boots in
// whatever the kernel (a UEFI boot of a small kernel needs less: see
// uefiFloor). Run raises an image's smaller MEMORY to the floor, with a
// notice, and refuses a smaller WithMemory.
func MinMemory(boot string) int64 {
	if boot == BootUEFI {
		return uefiMinMemory
	}
	return spec.MinMemoryBytes
}

// Run boots the image layout l under QEMU and returns the app's exit
// status, read from the init's console line spec.ExitMarker. A layout not
// yet verified is verified first (layout.Verify): nothing boots that does
// not match its config.json. QEMU's arguments are built from the validated
// config's typed values only. Run stops QEMU (SIGTERM, then SIGKILL after
// the stop grace) when ctx is cancelled, and never returns while QEMU
// still runs.
func Run(ctx context.Context, l *layout.Layout, opts ...Option) (int, error) {
	o := newOptions(opts)
	if !l.Verified() {
		if err := l.Verify(ctx); err != nil {
			return -1, err
		}
	}
	m, err := plan(l.Dir(), l.Config(), l.HasDisk(), o)
	if err != nil {
		return -1, err
	}
	scratch, err := os.MkdirTemp(o.scratchDir, "uni-vm-")
	if err != nil {
		return -1, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	if err := prepare(&m, o, scratch); err != nil {
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

// plan turns the options and a layout's validated config into a Machine,
// without looking at the host: everything QEMU's command line holds but
// the accelerator and the firmware comes from here.
func plan(dir string, cfg spec.ImageConfig, hasDisk bool, o options) (Machine, error) {
	m := Machine{Boot: o.boot, CPUs: cfg.CPUs}
	floor := MinMemory(o.boot)
	if o.boot == BootUEFI {
		floor = uefiFloor(filepath.Join(dir, spec.KernelFile))
	}
	memory, err := guestMemory(cfg.MemoryBytes, floor, o)
	if err != nil {
		return m, err
	}
	m.MemoryMiB = memoryMiB(memory)
	if o.cpus != 0 {
		if o.cpus < spec.MinCPUs || o.cpus > spec.MaxCPUs {
			return m, fmt.Errorf("cpus %d: outside %d to %d", o.cpus, spec.MinCPUs, spec.MaxCPUs)
		}
		m.CPUs = o.cpus
	}
	if o.portsSet {
		m.Ports = o.ports
	} else if m.Ports, err = DefaultPorts(cfg); err != nil {
		return m, err
	}
	if err := checkNoDuplicateHostPorts(m.Ports); err != nil {
		return m, err
	}
	in := func(name string) string { return filepath.Join(dir, name) }
	switch o.boot {
	case BootDirect:
		if m.Type, err = directMachine(cfg.Kernel, o.machine); err != nil {
			return m, err
		}
		m.Kernel, m.Initrd, m.Rootfs = in(spec.KernelFile), in(spec.InitrdFile), in(spec.RootfsFile)
		m.Cmdline = strings.Join(append([]string{cfg.Cmdline}, o.extraCmdline...), " ")
		if err := checkCmdline(m.Cmdline); err != nil {
			return m, err
		}
	case BootUEFI, BootBIOS:
		if o.machine != "" && o.machine != MachineQ35 {
			return m, fmt.Errorf("%s boot: runs on the q35 machine only, not %s", o.boot, o.machine)
		}
		m.Type = MachineQ35
		if !hasDisk {
			return m, fmt.Errorf("%s boot of %s needs %s, a disk image: build the image with --disk", o.boot, dir, spec.DiskFile)
		}
		m.Disk = in(spec.DiskFile)
		if len(o.extraCmdline) > 0 {
			return m, fmt.Errorf("%s boot: extra kernel arguments %q work with direct boot only (the disk's loader has its own command line)", o.boot, o.extraCmdline)
		}
	default:
		return m, fmt.Errorf("boot %q: want direct, uefi or bios", o.boot)
	}
	return m, nil
}

// directMachine picks the machine of a direct boot: microvm when the
// kernel boots there (its bundle said so at build time), else q35, unless
// the caller chose.
func directMachine(k spec.KernelRef, want string) (string, error) {
	switch want {
	case "":
		if k.Microvm {
			return MachineMicrovm, nil
		}
		return MachineQ35, nil
	case MachineQ35:
		return MachineQ35, nil
	case MachineMicrovm:
		if !k.Microvm {
			return "", fmt.Errorf("machine microvm: kernel %s (%s) does not say it boots there (its bundle needs PVH, virtio-mmio and ACPI built in)", k.Name, k.Release)
		}
		return MachineMicrovm, nil
	}
	return "", fmt.Errorf("machine %q: want q35 or microvm", want)
}

// guestMemory is the RAM the guest gets: the option's, else the image's
// raised to the boot's floor with a notice.
func guestMemory(image, floor int64, o options) (int64, error) {
	if o.memoryBytes != 0 {
		if o.memoryBytes < floor {
			return 0, fmt.Errorf("memory %d MiB: a %s boot needs at least %d MiB (the firmware and boot loader take their share)", o.memoryBytes>>20, o.boot, floor>>20)
		}
		if o.memoryBytes > spec.MaxMemoryBytes {
			return 0, fmt.Errorf("memory %d MiB: more than %d MiB", o.memoryBytes>>20, spec.MaxMemoryBytes>>20)
		}
		return o.memoryBytes, nil
	}
	if image < floor {
		fmt.Fprintf(o.log, "uni: %s boot: the guest gets %d MiB instead of the image's %d MiB, which the firmware and boot loader leave too little of\n", o.boot, floor>>20, image>>20)
		return floor, nil
	}
	return image, nil
}

// prepare settles what depends on the host: the accelerator, a private copy
// of the UEFI variable store, and that the host ports are free.
func prepare(m *Machine, o options, scratch string) error {
	if m.Boot == BootUEFI {
		fw, err := findOVMF(o.firmwareDirs)
		if err != nil {
			return err
		}
		if m.Firmware, err = privateVars(fw, scratch); err != nil {
			return err
		}
	}
	accel, err := PickAccel(o.accel)
	if err != nil {
		return err
	}
	m.Accel = accel
	if m.Type == MachineMicrovm {
		if err := microvmClock(m, o.machine == MachineMicrovm, "/proc/cpuinfo"); err != nil {
			return err
		}
	}
	return checkPortsFree(m.Ports)
}

// microvmClock tells the kernel the TSC's frequency (tsc_early_khz), or
// falls back to q35 when the host's is unknown (an error when microvm was
// asked for). microvm has no HPET and no ACPI PM timer to calibrate the
// TSC against: under TCG the calibration against the PIT fails about half
// the time on a busy host, the kernel marks the TSC unstable and the guest
// hangs with no clock. Under TCG and KVM alike the guest's TSC runs at the
// host's rate, which the host's kernel measured.
func microvmClock(m *Machine, forced bool, cpuinfo string) error {
	khz, err := hostTSCkHz(cpuinfo)
	if err != nil {
		if forced {
			return fmt.Errorf("machine microvm: %w", err)
		}
		m.Type = MachineQ35
		return nil
	}
	m.Cmdline += fmt.Sprintf(" tsc_early_khz=%d", khz)
	return nil
}

// hostTSCkHz reads the host's TSC frequency from /proc/cpuinfo: on x86,
// bogomips is loops_per_jiffy scaled, and the kernel derives those from
// the TSC, so bogomips × 500 is its frequency in kHz (to 5 kHz).
func hostTSCkHz(cpuinfo string) (int64, error) {
	data, err := os.ReadFile(cpuinfo)
	if err != nil {
		return 0, fmt.Errorf("the host's TSC frequency: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "bogomips" {
			continue
		}
		b, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || b < 100 || b > 100000 {
			return 0, fmt.Errorf("the host's TSC frequency: %s says bogomips %q", cpuinfo, strings.TrimSpace(v))
		}
		return int64(b*500 + 0.5), nil
	}
	return 0, fmt.Errorf("the host's TSC frequency: %s has no bogomips line", cpuinfo)
}

// memoryMiB rounds up to QEMU's unit, so a request is never cut short.
func memoryMiB(bytes int64) int64 { return (bytes + 1<<20 - 1) >> 20 }

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
