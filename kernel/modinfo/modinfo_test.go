package modinfo

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel/deb"
	"github.com/uniforge/packer-plugin-unikernel/kernel/internal/kerneltest"
)

func TestParse(t *testing.T) {
	section := []byte("license=GPL\x00alias=virtio:d00000002v*\x00\x00\x00depends=virtio,virtio-ring\x00" +
		"softdep=pre: crc32c\x00junk-without-equals\x00name=virtio-blk\x00alias=pci:v*\x00vermagic=6.1 SMP\x00")
	got := Parse(section)
	want := &Info{
		Name:     "virtio_blk",
		Depends:  []string{"virtio", "virtio_ring"},
		Aliases:  []string{"virtio:d00000002v*", "pci:v*"},
		SoftDeps: []string{"pre: crc32c"},
		License:  "GPL",
		Vermagic: "6.1 SMP",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if got := Parse([]byte("depends=\x00")); got.Depends != nil {
		t.Errorf("empty depends parsed as %q", got.Depends)
	}
}

func TestNameFromPathAndBuiltin(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"/x/y/squashfs.ko.xz":                         "squashfs",
		"a.ko.zst":                                    "a",
	} {
		if got := NameFromPath(in); got != want {
			t.Errorf("NameFromPath(%q) = %q, want %q", in, got, want)
		}
	}
	got, err := ParseBuiltin(strings.NewReader("kernel/fs/ext4/ext4.ko\n\nkernel/drivers/nvme/host/nvme-core.ko\nkernel/fs/ext4/ext4.ko\n"))
	if err != nil || !reflect.DeepEqual(got, []string{"ext4", "nvme_core"}) {
		t.Errorf("ParseBuiltin: %v, %v", got, err)
	}
}

func TestReadELFRejectsNonModules(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(self); err == nil || !strings.Contains(err.Error(), ".modinfo") {
		t.Errorf("the test binary read as a module: %v", err)
	}
	if _, err := ReadELF(bytes.NewReader([]byte("not an elf file at all"))); err == nil {
		t.Error("garbage read as a module")
	}
}

// TestRealModulesAgainstKmod reads every module of the distribution's cloud
// kernel and compares name, depends and aliases with what kmod's modinfo
// prints for the same file.
func TestRealModulesAgainstKmod(t *testing.T) {
	modinfoBin := testtool.Need(t, "modinfo")[0] // kmod's: the test oracle
	var err error
	debPath := kerneltest.CloudKernelDeb(t)
	root := t.TempDir()
	keep := func(name string) bool { return strings.HasPrefix(name, "lib/modules/") }
	if _, err := deb.Extract(context.Background(), debPath, root, keep); err != nil {
		t.Fatal(err)
	}
	count := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".ko") {
			return err
		}
		count++
		got, err := ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		out, err := exec.Command(modinfoBin, "-0", p).Output()
		if err != nil {
			t.Fatalf("modinfo %s: %v", p, err)
		}
		want := &Info{}
		for _, field := range strings.Split(string(out), "\x00") {
			key, value, _ := strings.Cut(field, "=")
			switch key {
			case "name":
				want.Name = value
			case "depends":
				// depends= spells some names with '-' (crc-itu-t); module
				// names, and so our Depends, use '_'.
				for _, d := range strings.Split(value, ",") {
					if d != "" {
						want.Depends = append(want.Depends, NormalizeName(d))
					}
				}
			case "alias":
				want.Aliases = append(want.Aliases, value)
			}
		}
		if want.Name == "" {
			want.Name = NameFromPath(p)
		}
		if got.Name != want.Name || !reflect.DeepEqual(got.Depends, want.Depends) || !reflect.DeepEqual(got.Aliases, want.Aliases) {
			t.Errorf("%s:\n ours %s %q %q\n kmod %s %q %q", p, got.Name, got.Depends, got.Aliases, want.Name, want.Depends, want.Aliases)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count < 500 {
		t.Errorf("only %d modules in %s", count, debPath)
	}
	t.Logf("%d modules compared with kmod", count)
}

// testdata/tiny.ko is a relocatable ELF made with
// printf '.section .modinfo,"a"\n.asciz "license=GPL"\n…' | as -o tiny.ko
// (see the strings below): the smallest file with a real .modinfo section.
func TestReadFileTinyModule(t *testing.T) {
	got, err := ReadFile(filepath.Join("testdata", "tiny.ko"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Info{Name: "tiny_mod", Depends: []string{"virtio", "crc_itu_t"}, Aliases: []string{"virtio:d00000002v*"}, License: "GPL"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
