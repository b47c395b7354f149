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

// TestPickAccelOnThisHost: auto picks what this host can really use: TCG
// where KVM is the paravirtual kvm_pvm (which hangs ordinary guests) or
// missing, KVM where a real one answers.
func TestPickAccelOnThisHost(t *testing.T) {
	probe := hostKVMProbe()
	want := AccelTCG
	if _, err := os.Stat(probe.pvmModule); err != nil && probe.kvmUsable() == nil {
		want = AccelKVM
	}
	if got, err := PickAccel(AccelAuto); err != nil || got != want {
		t.Fatalf("PickAccel(auto) = %q, %v on this host, want %q", got, err, want)
	}
}
