package vm

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// writeLayout makes an image layout in a temp dir with the given files
// (name → content) and config.
func writeLayout(t *testing.T, cfg spec.ImageConfig, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	files[spec.ConfigFile] = data
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func directFiles() map[string][]byte {
	return map[string][]byte{spec.KernelFile: []byte("k"), spec.InitrdFile: []byte("i"), spec.RootfsFile: []byte("r")}
}

func TestRunExplainsMissingDiskForFirmwareBoots(t *testing.T) {
	dir := writeLayout(t, spec.ImageConfig{}, directFiles())
	for _, boot := range []string{BootUEFI, BootBIOS} {
		_, err := Run(context.Background(), dir, WithBoot(boot), WithAccel(AccelTCG))
		if err == nil || !strings.Contains(err.Error(), "--disk") || !strings.Contains(err.Error(), spec.DiskFile) {
			t.Errorf("%s boot without disk.img: %v; want a hint to build with --disk", boot, err)
		}
	}
}

func TestRunNamesMissingLayoutFiles(t *testing.T) {
	files := directFiles()
	delete(files, spec.InitrdFile)
	dir := writeLayout(t, spec.ImageConfig{}, files)
	_, err := Run(context.Background(), dir, WithAccel(AccelTCG))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, spec.InitrdFile)) {
		t.Fatalf("missing initrd: %v", err)
	}
	_, err = Run(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), spec.ConfigFile) {
		t.Fatalf("missing config.json: %v", err)
	}
}

func TestRunNamesTheQEMUPackageWhenQEMUIsMissing(t *testing.T) {
	dir := writeLayout(t, spec.ImageConfig{}, directFiles())
	_, err := Run(context.Background(), dir, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"))
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
	dir := writeLayout(t, spec.ImageConfig{ExposedPorts: []spec.Port{{Port: busy, Protocol: "tcp"}}}, directFiles())
	// A QEMU that does not exist proves the check comes first.
	_, err = Run(context.Background(), dir, WithAccel(AccelTCG), WithQEMU("qemu-system-does-not-exist"))
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(int(busy))) {
		t.Fatalf("busy port %d: %v", busy, err)
	}
}

func TestPlanTakesMemoryAndCPUsFromConfigUnlessOverridden(t *testing.T) {
	cfg := spec.ImageConfig{MemoryBytes: 200 << 20, CPUs: 2, Cmdline: "console=ttyS0"}
	dir := writeLayout(t, cfg, directFiles())
	o := defaultOptions()
	o.accel = AccelTCG
	m, err := plan(dir, cfg, o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.MemoryMiB != 200 || m.CPUs != 2 || m.Cmdline != "console=ttyS0" {
		t.Fatalf("from config: %+v", m)
	}
	for _, opt := range []Option{WithMemory(64 << 20), WithCPUs(4), WithKernelArgs("debug", "x=1")} {
		opt(&o)
	}
	if m, err = plan(dir, cfg, o, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if m.MemoryMiB != 64 || m.CPUs != 4 || m.Cmdline != "console=ttyS0 debug x=1" {
		t.Fatalf("overridden: %+v", m)
	}
	if m, err = plan(dir, spec.ImageConfig{}, defaultOptionsWith(WithAccel(AccelTCG)), t.TempDir()); err != nil || m.MemoryMiB != 128 || m.CPUs != 1 {
		t.Fatalf("defaults: %+v, %v", m, err)
	}
}

func TestPlanCopiesUEFIVarsAndLeavesTheTemplateAlone(t *testing.T) {
	fwDir := t.TempDir()
	os.WriteFile(filepath.Join(fwDir, "OVMF_CODE.fd"), []byte("code"), 0o644)
	os.WriteFile(filepath.Join(fwDir, "OVMF_VARS.fd"), []byte("vars"), 0o644)
	files := directFiles()
	files[spec.DiskFile] = []byte("disk")
	dir := writeLayout(t, spec.ImageConfig{}, files)
	scratch := t.TempDir()
	m, err := plan(dir, spec.ImageConfig{}, defaultOptionsWith(WithAccel(AccelTCG), WithBoot(BootUEFI), WithFirmwareDirs(fwDir)), scratch)
	if err != nil {
		t.Fatal(err)
	}
	if m.Firmware.Code != filepath.Join(fwDir, "OVMF_CODE.fd") || filepath.Dir(m.Firmware.Vars) != scratch {
		t.Fatalf("firmware %+v: want the code in place and vars copied into %s", m.Firmware, scratch)
	}
	if data, err := os.ReadFile(m.Firmware.Vars); err != nil || string(data) != "vars" {
		t.Fatalf("vars copy: %q, %v", data, err)
	}
	_, err = plan(dir, spec.ImageConfig{}, defaultOptionsWith(WithAccel(AccelTCG), WithBoot(BootUEFI), WithFirmwareDirs(t.TempDir())), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "ovmf") {
		t.Fatalf("no firmware: %v; want the ovmf package named", err)
	}
}

func defaultOptionsWith(opts ...Option) options { return newOptions(opts) }
