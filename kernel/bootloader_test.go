package kernel

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

func TestBootLoadersReproducible(t *testing.T) {
	testtool.Need(t, "grub-mkimage")
	var dirs []string
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		v, err := writeBootLoaders(context.Background(), "/usr/lib/grub", dir)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(v, "GRUB ") {
			t.Errorf("version %q", v)
		}
		dirs = append(dirs, dir)
	}
	for _, f := range []string{BIOSBootImage, BIOSCoreImage, EFIImage} {
		a := mustRead(t, filepath.Join(dirs[0], f))
		b := mustRead(t, filepath.Join(dirs[1], f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: two runs differ (%d and %d bytes)", f, len(a), len(b))
		}
	}
	entries, _ := os.ReadDir(dirs[0])
	if len(entries) != 2 { // bios/ and efi/, no leftover config
		t.Errorf("boot dir holds %d entries", len(entries))
	}
}

func TestBootLoadersMissingGrubNamesPackages(t *testing.T) {
	_, err := writeBootLoaders(context.Background(), t.TempDir(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "grub-pc-bin") || !strings.Contains(err.Error(), "grub-efi-amd64-bin") {
		t.Errorf("error %v does not name the GRUB packages", err)
	}
}
