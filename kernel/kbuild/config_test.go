package kbuild

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/kernel/configs"
)

func TestParseConfig(t *testing.T) {
	in := "# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"-mini\"\nCONFIG_D=0x10\nCONFIG_E=m\n"
	got, err := ParseConfig("f.config", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Assignment{
		{"f.config", 3, "CONFIG_A", "y"},
		{"f.config", 4, "CONFIG_B", "n"},
		{"f.config", 5, "CONFIG_C", `"-mini"`},
		{"f.config", 6, "CONFIG_D", "0x10"},
		{"f.config", 7, "CONFIG_E", "m"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseConfigNamesTheBadLine(t *testing.T) {
	for _, in := range []string{"CONFIG_A=y\nSQUASHFS=y\n", "CONFIG_A=y\nCONFIG_B=yes please\n", "CONFIG_A=y\nCONFIG_B=\n"} {
		_, err := ParseConfig("mine.config", strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), "mine.config:2:") {
			t.Errorf("%q: got %v, want an error naming mine.config:2", in, err)
		}
	}
}

// requiredOn is a resolved .config with every required option built in.
func requiredOn() []Assignment {
	var out []Assignment
	for _, r := range Required() {
		out = append(out, Assignment{File: ".config", Symbol: r.Symbol, Value: "y"})
	}
	return out
}

func TestCheckConfigAcceptsWhatTheInitNeeds(t *testing.T) {
	resolved := append(requiredOn(), Assignment{Symbol: "CONFIG_EXTRA", Value: `"x"`})
	asked := []Assignment{{File: "a", Line: 1, Symbol: "CONFIG_EXTRA", Value: `"x"`}, {File: "a", Line: 2, Symbol: "CONFIG_OFF", Value: "n"}}
	if err := CheckConfig(resolved, asked); err != nil {
		t.Fatal(err)
	}
}

func TestCheckConfigNamesWhatAFragmentDropped(t *testing.T) {
	var resolved []Assignment
	for _, a := range requiredOn() {
		if a.Symbol == "CONFIG_SQUASHFS" || a.Symbol == "CONFIG_SQUASHFS_ZSTD" {
			continue // what Kconfig does when squashfs is turned off
		}
		resolved = append(resolved, a)
	}
	asked := []Assignment{
		{File: "linux-mini.config", Line: 10, Symbol: "CONFIG_SQUASHFS", Value: "y"},
		{File: "linux-mini.config", Line: 11, Symbol: "CONFIG_SQUASHFS_ZSTD", Value: "y"},
		{File: "nosquash.config", Line: 2, Symbol: "CONFIG_SQUASHFS", Value: "n"},
	}
	err := CheckConfig(resolved, asked)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	msg := err.Error()
	for _, want := range []string{"CONFIG_SQUASHFS (the rootfs is squashfs), turned off by nosquash.config:2", "CONFIG_SQUASHFS_ZSTD", "linux-mini.config:11: CONFIG_SQUASHFS_ZSTD=y"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if len(ce.Missing) != 2 {
		t.Errorf("missing %v, want squashfs and its zstd", ce.Missing)
	}
}

func TestCheckConfigRefusesModules(t *testing.T) {
	resolved := append(requiredOn(), Assignment{Symbol: "CONFIG_E1000", Value: "m"})
	err := CheckConfig(resolved, nil)
	if err == nil || !strings.Contains(err.Error(), "CONFIG_E1000") || !strings.Contains(err.Error(), "modules") {
		t.Fatalf("got %v, want an error naming CONFIG_E1000 as a module", err)
	}
}

// The default fragments ask for everything the init needs: a resolved
// configuration can drop it only when Kconfig refuses a dependency, which
// the build then reports.
func TestDefaultFragmentsAskForTheRequiredOptions(t *testing.T) {
	asked := map[string]string{}
	for _, name := range configs.Default() {
		data, err := configs.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		as, err := ParseConfig(name, strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			asked[a.Symbol] = a.Value
		}
	}
	for _, r := range Required() {
		if asked[r.Symbol] != "y" {
			t.Errorf("%s (%s): the default fragments do not set it =y", r.Symbol, r.Why)
		}
	}
	for _, sym := range []string{"CONFIG_PVH", "CONFIG_VIRTIO_MMIO", "CONFIG_KERNEL_LZ4"} {
		if asked[sym] != "y" {
			t.Errorf("%s: want =y in the default fragments", sym)
		}
	}
}

func TestReadBuiltinModinfo(t *testing.T) {
	p := t.TempDir() + "/modules.builtin.modinfo"
	data := "virtio_blk.license=GPL\x00virtio_blk.description=x\x00squashfs.license=GPL\x00hv-vmbus.license=GPL\x00"
	if err := writeFile(p, data); err != nil {
		t.Fatal(err)
	}
	got, err := readBuiltinModinfo(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "hv_vmbus,squashfs,virtio_blk" {
		t.Fatalf("got %v", got)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("CONFIG_A=y\n# CONFIG_B is not set\n")
	f.Add("CONFIG_C=\"x\"\nCONFIG_D=-1\n")
	f.Fuzz(func(t *testing.T, in string) {
		as, err := ParseConfig("f", strings.NewReader(in))
		if err != nil {
			return
		}
		for _, a := range as {
			if !isSymbol(a.Symbol) || checkValue(a.Value) != nil {
				t.Fatalf("accepted %+v", a)
			}
		}
	})
}

func writeFile(p, data string) error { return os.WriteFile(p, []byte(data), 0o644) }
