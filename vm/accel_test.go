package vm

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPickAccel(t *testing.T) {
	dir := t.TempDir()
	pvm := filepath.Join(dir, "kvm_pvm")
	if err := os.Mkdir(pvm, 0o755); err != nil {
		t.Fatal(err)
	}
	// A regular file opens but does not answer the KVM ioctl: a broken KVM.
	brokenDevice := filepath.Join(dir, "kvm")
	if err := os.WriteFile(brokenDevice, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	cases := []struct {
		name      string
		requested string
		probe     kvmProbe
		want      string
		wantErr   bool
	}{
		{"tcg asked", "tcg", kvmProbe{device: missing, pvmModule: missing}, AccelTCG, false},
		{"auto without kvm device", "auto", kvmProbe{device: missing, pvmModule: missing}, AccelTCG, false},
		{"empty means auto", "", kvmProbe{device: missing, pvmModule: missing}, AccelTCG, false},
		{"auto with a kvm that does not answer", "auto", kvmProbe{device: brokenDevice, pvmModule: missing}, AccelTCG, false},
		{"auto with paravirtual kvm", "auto", kvmProbe{device: brokenDevice, pvmModule: pvm}, AccelTCG, false},
		{"kvm asked but missing", "kvm", kvmProbe{device: missing, pvmModule: missing}, "", true},
		{"kvm asked but broken", "kvm", kvmProbe{device: brokenDevice, pvmModule: missing}, "", true},
		{"unknown", "hvf", kvmProbe{device: missing, pvmModule: missing}, "", true},
	}
	for _, c := range cases {
		got, err := pickAccel(c.requested, c.probe)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("%s: pickAccel(%q) = %q, %v; want %q, error %v", c.name, c.requested, got, err, c.want, c.wantErr)
		}
	}
}

// On a host with a real, non-paravirtual KVM, auto must pick it; this runs
// only where that is the case.
func TestPickAccelAutoUsesWorkingKVM(t *testing.T) {
	probe := hostKVMProbe()
	if _, err := os.Stat(probe.pvmModule); err == nil {
		t.Skip("host KVM is the paravirtual kvm_pvm; auto must (and does, see TestPickAccel) choose tcg")
	}
	if err := probe.kvmUsable(); err != nil {
		t.Skipf("no usable KVM on this host: %v", err)
	}
	if got, err := PickAccel(AccelAuto); err != nil || got != AccelKVM {
		t.Fatalf("PickAccel(auto) = %q, %v with a working KVM", got, err)
	}
}

func TestPickAccelOnThisHostAvoidsParavirtualKVM(t *testing.T) {
	if _, err := os.Stat("/sys/module/kvm_pvm"); err != nil {
		t.Skip("kvm_pvm not loaded here")
	}
	if got, err := PickAccel(AccelAuto); err != nil || got != AccelTCG {
		t.Fatalf("PickAccel(auto) = %q, %v on a kvm_pvm host, want tcg", got, err)
	}
}
