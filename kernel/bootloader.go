package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// grubEmbeddedConfig is built into core.img and BOOTX64.EFI: find the
// partition holding /uni/grub.cfg (the ESP, written by the disk writer) and
// let GRUB's normal mode read it from there.
const grubEmbeddedConfig = "search --no-floppy --file --set=root /uni/grub.cfg\nset prefix=($root)/uni\n"

// grubPrefix is where GRUB looks for grub.cfg; the embedded config resets
// it to the same directory on the partition it found.
const grubPrefix = "/uni"

// grubModules are linked into both images, so GRUB needs no module files
// on disk. grub-mkimage adds their dependencies (moddep.lst).
func grubModules(bios bool) []string {
	mods := []string{"part_gpt", "part_msdos", "fat", "search", "search_fs_file",
		"normal", "configfile", "linux", "boot", "echo", "test", "serial"}
	if bios {
		mods = append([]string{"biosdisk"}, mods...)
	}
	return mods
}

const grubPackagesHint = "install the host's GRUB packages: apt-get install grub-pc-bin grub-efi-amd64-bin grub-common"

// writeBootLoaders makes boot/bios/boot.img, boot/bios/core.img and
// boot/efi/BOOTX64.EFI under bootDir from the host's GRUB, and returns
// grub-mkimage's version line. grub-mkimage output has no timestamps: the
// same GRUB build gives the same bytes.
func writeBootLoaders(ctx context.Context, grubLibDir, bootDir string) (string, error) {
	mkimage, err := exec.LookPath("grub-mkimage")
	if err != nil {
		return "", fmt.Errorf("grub-mkimage not found: %s", grubPackagesHint)
	}
	biosLib := filepath.Join(grubLibDir, "i386-pc")
	efiLib := filepath.Join(grubLibDir, "x86_64-efi")
	for _, need := range []string{filepath.Join(biosLib, "boot.img"), filepath.Join(biosLib, "moddep.lst"), filepath.Join(efiLib, "moddep.lst")} {
		if _, err := os.Stat(need); err != nil {
			return "", fmt.Errorf("%s missing: %s", need, grubPackagesHint)
		}
	}
	for _, d := range []string{"bios", "efi"} {
		if err := os.MkdirAll(filepath.Join(bootDir, d), 0o755); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(bootDir, "embedded.cfg.tmp")
	if err := os.WriteFile(cfg, []byte(grubEmbeddedConfig), 0o644); err != nil {
		return "", err
	}
	defer os.Remove(cfg)

	if err := copyFile(filepath.Join(biosLib, "boot.img"), filepath.Join(bootDir, filepath.FromSlash(BIOSBootImage))); err != nil {
		return "", err
	}
	images := []struct {
		format, lib, out string
		bios             bool
	}{
		{"i386-pc", biosLib, BIOSCoreImage, true},
		{"x86_64-efi", efiLib, EFIImage, false},
	}
	for _, img := range images {
		args := []string{"-O", img.format, "-d", img.lib, "-p", grubPrefix, "-c", cfg,
			"-o", filepath.Join(bootDir, filepath.FromSlash(img.out))}
		args = append(args, grubModules(img.bios)...)
		if err := run(ctx, mkimage, args...); err != nil {
			return "", err
		}
	}
	version, err := exec.CommandContext(ctx, mkimage, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("grub-mkimage --version: %w", err)
	}
	// "/usr/bin/grub-mkimage (GRUB) 2.06-13+deb12u2": keep what names the build.
	_, v, ok := strings.Cut(strings.TrimSpace(string(version)), "(GRUB) ")
	if !ok {
		return "", fmt.Errorf("grub-mkimage --version: unexpected %q", version)
	}
	return "GRUB " + v, nil
}

// run runs a command, returning its stderr in the error.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err() // killed because we were cancelled
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" && ctx.Err() == nil {
			return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

// copyFile copies src to a new file dst (0644).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeNewFile(dst, in)
}
