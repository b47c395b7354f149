package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestConvertLayout: `uni convert` of a layout built without --disk writes
// its disk.img first, then the format; qemu-img finds the VMDK identical
// to that disk, and the OVA describes the layout's memory.
func TestConvertLayout(t *testing.T) {
	testtool.NeedDownload(t, "the default kernel bundle")
	testtool.Need(t, "qemu-img", "tar")
	work := t.TempDir()
	ctx := helloGoContext(t, work)
	if out, status := uni(t, work, "build", "-o", "out", ctx); status != 0 {
		t.Fatalf("uni build: %d\n%s", status, out)
	}
	out, status := uni(t, work, "convert", "--format", "vmdk", "out")
	if status != 0 || strings.TrimSpace(out) != filepath.Join(work, "out.vmdk") {
		t.Fatalf("uni convert: %d\n%s", status, out)
	}
	disk := filepath.Join(work, "out", "disk.img")
	cmp := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", disk, filepath.Join(work, "out.vmdk"))
	if b, err := cmp.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, b)
	}
	if out, status := uni(t, work, "convert", "--format", "ova", "-o", "app.ova", "out"); status != 0 {
		t.Fatalf("uni convert --format ova: %d\n%s", status, out)
	}
	b, err := exec.Command("tar", "-xOf", filepath.Join(work, "app.ova"), "app.ovf").Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	if !strings.Contains(string(b), "<rasd:VirtualQuantity>96</rasd:VirtualQuantity>") {
		t.Errorf("app.ovf does not give the Unifile's 96 MiB:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(work, "out", "app.ova")); err == nil {
		t.Error("the ova landed inside the layout")
	}
}
