package modprobe

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func testIndex() *spec.ModuleIndex {
	return &spec.ModuleIndex{
		Modules: []spec.Module{
			{Name: "virtio", Path: "k/virtio.ko"},
			{Name: "virtio_ring", Path: "k/virtio_ring.ko"},
			{Name: "virtio_pci_modern_dev", Path: "k/modern.ko"},
			{Name: "virtio_pci", Path: "k/virtio_pci.ko", Depends: []string{"virtio", "virtio_ring", "virtio-pci-modern-dev"},
				Aliases: []string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}},
			{Name: "virtio_blk", Path: "k/virtio_blk.ko", Depends: []string{"virtio", "virtio_ring"},
				Aliases: []string{"virtio:d00000002v*"}},
			{Name: "failover", Path: "k/failover.ko"},
			{Name: "net_failover", Path: "k/net_failover.ko", Depends: []string{"failover"}},
			{Name: "virtio_net", Path: "k/virtio_net.ko", Depends: []string{"net_failover", "virtio", "virtio_ring"},
				Aliases: []string{"virtio:d00000001v*"}},
			{Name: "e1000", Path: "k/e1000.ko", Aliases: []string{"pci:v00008086d0000100Esv*sd*bc*sc*i*"}},
			{Name: "squashfs", Path: "k/squashfs.ko"},
		},
		Always: []string{"squashfs"},
	}
}

func addDevice(t *testing.T, sysfs, bus, dev, alias string) {
	t.Helper()
	dir := filepath.Join(sysfs, "bus", bus, "devices", dev)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modalias"), []byte(alias+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestColdplugLoadsInDependencyOrder plays a kernel: loading virtio_pci
// makes two virtio devices appear, as its probe does in a real guest.
func TestColdplugLoadsInDependencyOrder(t *testing.T) {
	sysfs := t.TempDir()
	addDevice(t, sysfs, "pci", "0000:00:03.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	addDevice(t, sysfs, "pci", "0000:00:04.0", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")
	addDevice(t, sysfs, "pci", "0000:00:01.0", "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00")
	var mu sync.Mutex
	var order []string
	insert := func(p string) error {
		name := strings.TrimSuffix(filepath.Base(p), ".ko")
		mu.Lock()
		defer mu.Unlock()
		order = append(order, name)
		if name == "virtio_pci" {
			addDevice(t, sysfs, "virtio", "virtio0", "virtio:d00000001v00001AF4")
			addDevice(t, sysfs, "virtio", "virtio1", "virtio:d00000002v00001AF4")
		}
		if !strings.HasPrefix(p, "/initrd/k/") {
			t.Errorf("module path %s not below the root", p)
		}
		return nil
	}
	idx := testIndex()
	l, err := New(idx, "/initrd", WithInsert(insert))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.LoadAll(idx.Always); err != nil {
		t.Fatal(err)
	}
	if err := l.Coldplug(sysfs); err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, n := range order {
		if _, dup := pos[n]; dup {
			t.Errorf("%s inserted twice", n)
		}
		pos[n] = i
	}
	for _, want := range []string{"squashfs", "virtio", "virtio_ring", "modern", "virtio_pci", "virtio_blk", "failover", "net_failover", "virtio_net"} {
		if _, ok := pos[want]; !ok {
			t.Errorf("%s not loaded (order %v)", want, order)
		}
	}
	if _, ok := pos["e1000"]; ok {
		t.Errorf("e1000 loaded with no matching device")
	}
	for _, m := range idx.Modules {
		base := strings.TrimSuffix(filepath.Base(m.Path), ".ko")
		for _, d := range m.Depends {
			dep := strings.TrimSuffix(filepath.Base(l.modules[NormalizeName(d)].Path), ".ko")
			if pi, ok := pos[base]; ok && pos[dep] > pi {
				t.Errorf("%s loaded before its dependency %s: %v", base, dep, order)
			}
		}
	}
}

func TestNewRejectsBadIndex(t *testing.T) {
	missing := &spec.ModuleIndex{Modules: []spec.Module{{Name: "a", Depends: []string{"b"}}}}
	if _, err := New(missing, "/"); err == nil || !strings.Contains(err.Error(), "b") {
		t.Errorf("missing dependency: got %v", err)
	}
	cycle := &spec.ModuleIndex{Modules: []spec.Module{{Name: "a", Depends: []string{"b"}}, {Name: "b", Depends: []string{"a"}}}}
	if _, err := New(cycle, "/"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: got %v", err)
	}
}

func TestLoadErrorNamesModule(t *testing.T) {
	l, err := New(testIndex(), "/", WithInsert(func(p string) error {
		if strings.Contains(p, "failover.ko") {
			return os.ErrPermission
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	err = l.Load("virtio_net")
	if err == nil || !strings.Contains(err.Error(), "virtio_net") || !strings.Contains(err.Error(), "failover") {
		t.Fatalf("want an error naming virtio_net and failover, got %v", err)
	}
}

// TestColdplugReadsOnlyNamedBuses: a device on a bus no alias names is
// never read (its modalias here would match e1000 if it were).
func TestColdplugReadsOnlyNamedBuses(t *testing.T) {
	sysfs := t.TempDir()
	addDevice(t, sysfs, "acpi", "PNP0A08:00", "pci:v00008086d0000100Esv0sd0bc0sc0i0")
	addDevice(t, sysfs, "pci", "0000:00:02.0", "pci:v00008086d0000100Esv0sd0bc0sc0i0")
	l, err := New(testIndex(), "/", WithInsert(func(string) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.buses(sysfs), ","); got != "pci,virtio" {
		t.Errorf("buses %q, want pci,virtio", got)
	}
	seen := map[string]bool{}
	if got := newModaliases(sysfs, l.buses(sysfs), seen); len(got) != 1 {
		t.Errorf("read %d modaliases, want the PCI device's only: %q", len(got), got)
	}
	if got := newModaliases(sysfs, l.buses(sysfs), seen); len(got) != 0 {
		t.Errorf("a second round read %q again", got)
	}
	idx := testIndex()
	idx.Modules[0].Aliases = []string{"*:anything"}
	wild, _ := New(idx, "/")
	if got := strings.Join(wild.buses(sysfs), ","); got != "cpu,acpi,pci" {
		t.Errorf("a wildcard bus must scan every bus: %q", got)
	}
}
