package vm

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultFirmwareDirs are searched, in order, for OVMF: Debian/Ubuntu
// (ovmf package), then the layouts of Fedora and Arch.
func DefaultFirmwareDirs() []string {
	return []string{"/usr/share/OVMF", "/usr/share/qemu", "/usr/share/edk2/ovmf", "/usr/share/edk2/x64", "/usr/share/edk2-ovmf/x64"}
}

// ovmfPairs are code/vars images that belong together, preferred first.
// Secure-boot variants are left out: they refuse our unsigned loader.
var ovmfPairs = [][2]string{
	{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},
	{"OVMF_CODE.fd", "OVMF_VARS.fd"},
	{"OVMF_CODE.4m.fd", "OVMF_VARS.4m.fd"},
}

// findOVMF locates the UEFI firmware in dirs. The returned Firmware names
// the read-only vars template in Vars; the caller copies it before use.
func findOVMF(dirs []string) (Firmware, error) {
	for _, dir := range dirs {
		for _, pair := range ovmfPairs {
			code, vars := filepath.Join(dir, pair[0]), filepath.Join(dir, pair[1])
			if isFile(code) && isFile(vars) {
				return Firmware{Code: code, Vars: vars}, nil
			}
		}
	}
	for _, dir := range dirs {
		if combined := filepath.Join(dir, "OVMF.fd"); isFile(combined) {
			return Firmware{Combined: combined}, nil
		}
	}
	return Firmware{}, fmt.Errorf("no OVMF UEFI firmware (OVMF_CODE*.fd with its OVMF_VARS*.fd, or OVMF.fd) in %s: install the package ovmf", strings.Join(dirs, ", "))
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// privateVars copies the firmware's variable store template into dir, so
// the guest's writes to it never touch the system copy.
func privateVars(fw Firmware, dir string) (Firmware, error) {
	if fw.Vars == "" {
		return fw, nil
	}
	src, err := os.Open(fw.Vars)
	if err != nil {
		return fw, fmt.Errorf("OVMF vars %s: %w", fw.Vars, err)
	}
	defer src.Close()
	copyPath := filepath.Join(dir, "OVMF_VARS.fd")
	dst, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fw, fmt.Errorf("OVMF vars copy %s: %w", copyPath, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fw, fmt.Errorf("copying OVMF vars %s to %s: %w", fw.Vars, copyPath, err)
	}
	if err := dst.Close(); err != nil {
		return fw, fmt.Errorf("OVMF vars copy %s: %w", copyPath, err)
	}
	fw.Vars = copyPath
	return fw, nil
}
