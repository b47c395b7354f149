package vm

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// openLayout writes a valid layout with cfg (digests filled in) and opens it.
func openLayout(t *testing.T, cfg spec.ImageConfig, files layouttest.Files) *layout.Layout {
	t.Helper()
	dir := t.TempDir()
	if _, err := layouttest.Write(dir, cfg, files); err != nil {
		t.Fatal(err)
	}
	l, err := layout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRunExplainsMissingDiskForFirmwareBoots(t *testing.T) {
	l := openLayout(t, layouttest.Config(), layouttest.Files{})
	for _, boot := range []string{BootUEFI, BootBIOS} {
		_, err := Run(context.Background(), l, WithBoot(boot), WithAccel(AccelTCG))
		if err == nil || !strings.Contains(err.Error(), "--disk") || !strings.Contains(err.Error(), spec.DiskFile) {
			t.Errorf("%s boot without disk.img: %v; want a hint to build with --disk", boot, err)
		}
	}
}

func TestRunVerifiesTheLayoutBeforeQEMU(t *testing.T) {
	l := openLayout(t, layouttest.Config(), layouttest.Files{})
	p := filepath.Join(l.Dir(), spec.RootfsFile)
	data, _ := os.ReadFile(p)
	data[100] ^= 0xff
	os.WriteFile(p, data, 0o644)
	// A QEMU that does not exist proves the check comes first.
	_, err := Run(context.Background(), l, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"))
	if !errors.Is(err, layout.ErrMismatch) || !strings.Contains(err.Error(), spec.RootfsFile) {
		t.Fatalf("tampered rootfs.img: %v", err)
	}
}

func TestRunRefusesTooManyDefaultPortsButTakesChosenOnes(t *testing.T) {
	cfg := layouttest.Config()
	cfg.ExposedPorts = nil
	for p := 1; p <= 1000; p++ {
		cfg.ExposedPorts = append(cfg.ExposedPorts, spec.Port{Port: uint16(p), Protocol: "udp"})
	}
	l := openLayout(t, cfg, layouttest.Files{})
	_, err := Run(context.Background(), l, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"))
	if !errors.Is(err, ErrTooManyPorts) {
		t.Fatalf("1000 exposed ports: %v", err)
	}
	_, err = Run(context.Background(), l, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"), WithPorts())
	if err == nil || !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Fatalf("no forwards chosen: %v; want to get as far as looking for QEMU", err)
	}
}

func TestRunNamesTheQEMUPackageWhenQEMUIsMissing(t *testing.T) {
	l := openLayout(t, layouttest.Config(), layouttest.Files{})
	_, err := Run(context.Background(), l, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"))
	if err == nil || !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Fatalf("missing QEMU: %v; want the apt package named", err)
	}
}

func TestRunRefusesAPortInUseBeforeStartingQEMU(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := uint16(ln.Addr().(*net.TCPAddr).Port)
	cfg := layouttest.Config()
	cfg.ExposedPorts = []spec.Port{{Port: busy, Protocol: "tcp"}}
	l := openLayout(t, cfg, layouttest.Files{})
	// A QEMU that does not exist proves the check comes first.
	_, err = Run(context.Background(), l, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"))
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(int(busy))) {
		t.Fatalf("busy port %d: %v", busy, err)
	}
}

func TestPlanTakesMemoryAndCPUsFromConfigUnlessOverridden(t *testing.T) {
	cfg := layouttest.Config()
	cfg.MemoryBytes, cfg.CPUs, cfg.Cmdline = 200<<20, 2, "console=ttyS0"
	o := defaultOptions()
	m, err := plan("/l", cfg, false, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.MemoryMiB != 200 || m.CPUs != 2 || m.Cmdline != "console=ttyS0" || m.Kernel != "/l/kernel" {
		t.Fatalf("from config: %+v", m)
	}
	for _, opt := range []Option{WithMemory(64 << 20), WithCPUs(4), WithKernelArgs("debug", "x=1")} {
		opt(&o)
	}
	if m, err = plan("/l", cfg, false, o); err != nil {
		t.Fatal(err)
	}
	if m.MemoryMiB != 64 || m.CPUs != 4 || m.Cmdline != "console=ttyS0 debug x=1" {
		t.Fatalf("overridden: %+v", m)
	}
	for _, bad := range []Option{WithCPUs(65), WithMemory(16 << 20), WithMemory(65 << 30), WithKernelArgs("a\nb")} {
		if _, err := plan("/l", cfg, false, defaultOptionsWith(bad)); err == nil {
			t.Errorf("bad option accepted: %+v", defaultOptionsWith(bad))
		}
	}
}

func TestMemoryFloorPerBootMode(t *testing.T) {
	if MinMemory(BootUEFI) != 256<<20 || MinMemory(BootDirect) != spec.MinMemoryBytes || MinMemory(BootBIOS) != spec.MinMemoryBytes {
		t.Fatalf("floors: uefi %d, direct %d, bios %d", MinMemory(BootUEFI), MinMemory(BootDirect), MinMemory(BootBIOS))
	}
	cfg := layouttest.Config()
	cfg.MemoryBytes = 96 << 20
	var log strings.Builder
	m, err := plan("/l", cfg, true, defaultOptionsWith(WithBoot(BootUEFI), WithLog(&log)))
	if err != nil || m.MemoryMiB != 256 || !strings.Contains(log.String(), "256 MiB instead of the image's 96 MiB") {
		t.Fatalf("uefi raises the image's 96 MiB: %d MiB, %v, notice %q", m.MemoryMiB, err, log.String())
	}
	log.Reset()
	if m, err = plan("/l", cfg, true, defaultOptionsWith(WithBoot(BootBIOS), WithLog(&log))); err != nil || m.MemoryMiB != 96 || log.Len() != 0 {
		t.Fatalf("bios keeps 96 MiB: %d MiB, %v, notice %q", m.MemoryMiB, err, log.String())
	}
	_, err = plan("/l", cfg, true, defaultOptionsWith(WithBoot(BootUEFI), WithMemory(128<<20)))
	if err == nil || !strings.Contains(err.Error(), "at least 256 MiB") {
		t.Fatalf("an explicit 128 MiB for uefi: %v", err)
	}
	if m, err = plan("/l", cfg, true, defaultOptionsWith(WithBoot(BootUEFI), WithMemory(512<<20))); err != nil || m.MemoryMiB != 512 {
		t.Fatalf("an explicit 512 MiB for uefi: %d, %v", m.MemoryMiB, err)
	}
}

func TestPrepareCopiesUEFIVarsAndLeavesTheTemplateAlone(t *testing.T) {
	fwDir := t.TempDir()
	os.WriteFile(filepath.Join(fwDir, "OVMF_CODE.fd"), []byte("code"), 0o644)
	os.WriteFile(filepath.Join(fwDir, "OVMF_VARS.fd"), []byte("vars"), 0o644)
	scratch := t.TempDir()
	m := Machine{Boot: BootUEFI}
	if err := prepare(&m, defaultOptionsWith(WithAccel(AccelTCG), WithFirmwareDirs(fwDir)), scratch); err != nil {
		t.Fatal(err)
	}
	if m.Firmware.Code != filepath.Join(fwDir, "OVMF_CODE.fd") || filepath.Dir(m.Firmware.Vars) != scratch {
		t.Fatalf("firmware %+v: want the code in place and vars copied into %s", m.Firmware, scratch)
	}
	if data, err := os.ReadFile(m.Firmware.Vars); err != nil || string(data) != "vars" {
		t.Fatalf("vars copy: %q, %v", data, err)
	}
	m = Machine{Boot: BootUEFI}
	err := prepare(&m, defaultOptionsWith(WithAccel(AccelTCG), WithFirmwareDirs(t.TempDir())), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "ovmf") {
		t.Fatalf("no firmware: %v; want the ovmf package named", err)
	}
}

func defaultOptionsWith(opts ...Option) options { return newOptions(opts) }

// fakeBzImage writes the start of a bzImage whose setup header says
// init_size.
func fakeBzImage(t *testing.T, dir string, initSize uint32) {
	t.Helper()
	h := make([]byte, 0x300)
	copy(h[0x202:], "HdrS")
	binary.LittleEndian.PutUint32(h[0x260:], initSize)
	if err := os.WriteFile(filepath.Join(dir, spec.KernelFile), h, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUEFIFloorFollowsTheKernel(t *testing.T) {
	cfg := layouttest.Config()
	cfg.MemoryBytes = 128 << 20
	for _, c := range []struct {
		initSize uint32
		want     int64
	}{{15 << 20, 128}, {51 << 20, 256}, {200 << 20, 256}} {
		dir := t.TempDir()
		fakeBzImage(t, dir, c.initSize)
		var log strings.Builder
		m, err := plan(dir, cfg, true, defaultOptionsWith(WithBoot(BootUEFI), WithLog(&log)))
		if err != nil || m.MemoryMiB != c.want {
			t.Errorf("init_size %d MiB: %d MiB (%v), want %d", c.initSize>>20, m.MemoryMiB, err, c.want)
		}
		if raised := log.Len() > 0; raised != (c.want > 128) {
			t.Errorf("init_size %d MiB: notice %q", c.initSize>>20, log.String())
		}
	}
	if got := uefiFloor(filepath.Join(t.TempDir(), "missing")); got != uefiMinMemory {
		t.Errorf("an unreadable kernel: floor %d, want the default kernel's", got)
	}
}

func TestMicrovmClock(t *testing.T) {
	dir := t.TempDir()
	cpuinfo := filepath.Join(dir, "cpuinfo")
	if err := os.WriteFile(cpuinfo, []byte("processor\t: 0\nmodel name\t: AMD EPYC\nbogomips\t: 5192.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := Machine{Type: MachineMicrovm, Cmdline: "console=ttyS0"}
	if err := microvmClock(&m, false, cpuinfo); err != nil || m.Cmdline != "console=ttyS0 tsc_early_khz=2596130" || m.Type != MachineMicrovm {
		t.Fatalf("%+v, %v", m, err)
	}
	m = Machine{Type: MachineMicrovm, Cmdline: "console=ttyS0"}
	if err := microvmClock(&m, false, filepath.Join(dir, "missing")); err != nil || m.Type != MachineQ35 || m.Cmdline != "console=ttyS0" {
		t.Fatalf("unknown TSC rate, microvm not forced: %+v, %v; want q35", m, err)
	}
	m = Machine{Type: MachineMicrovm}
	if err := microvmClock(&m, true, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("unknown TSC rate with microvm forced: no error")
	}
	if err := os.WriteFile(cpuinfo, []byte("bogomips\t: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hostTSCkHz(cpuinfo); err == nil {
		t.Fatal("a bogomips that is no number was taken")
	}
}
