// Package kernel makes, describes, finds and caches kernel bundles: a
// kernel image, its modules with their dependency and alias table, and the
// GRUB boot loaders for BIOS and UEFI, in one directory named by the
// digest of its contents (see docs/kernel-bundles.md).
package kernel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Names of the files in a bundle directory.
const (
	DescriptorFile  = "bundle.json"
	KernelFile      = "kernel"
	ConfigFile      = "config" // the kernel's build configuration, when the source has one
	ModulesDir      = "modules"
	ModuleIndexFile = "modules.json"
	BootDir         = "boot"
	LicenseFile     = "LICENSE"
)

// Boot loader files, relative to the bundle's boot directory (see BootFile).
const (
	BIOSBootImage = "bios/boot.img"
	BIOSCoreImage = "bios/core.img"
	EFIImage      = "efi/BOOTX64.EFI"
)

// DefaultName is the alias of the default bundle, made from the
// distribution's cloud kernel.
const DefaultName = "linux"

// descriptorSchema is the version of bundle.json's layout.
const descriptorSchema = 1

// Descriptor is bundle.json.
type Descriptor struct {
	SchemaVersion int    `json:"schemaVersion"`
	Name          string `json:"name"`    // the source package, or "linux-<release>" for a directory
	Release       string `json:"release"` // uname -r
	Version       string `json:"version"` // the package version; the release for a directory
	Arch          string `json:"arch"`    // Debian spelling: "amd64"
	Source        Source `json:"source"`
	// Digest is "sha256:<hex>" of the bundle's other files (see Digest).
	Digest     string   `json:"digest"`
	Builtin    []string `json:"builtin"` // modules built into the kernel, sorted
	Modules    int      `json:"modules"` // how many modules modules.json lists
	BootLoader string   `json:"bootLoader"`
	License    string   `json:"license"`
	// Microvm says the kernel boots on QEMU's microvm machine through its
	// PVH entry: its config has PVH, virtio-mmio, the serial console, ACPI
	// and squashfs built in. Direct boot then uses microvm.
	Microvm bool `json:"microvm,omitempty"`
	// Build is set for a kernel uni built from source (uni kernel build).
	Build *BuildInfo `json:"build,omitempty"`
}

// Source says where a bundle was imported from.
type Source struct {
	Kind          string `json:"kind"`                    // "deb" or "dir"
	Package       string `json:"package,omitempty"`       // the binary package
	Version       string `json:"version,omitempty"`       // its version
	SourcePackage string `json:"sourcePackage,omitempty"` // its source package, as the control file names it
	File          string `json:"file,omitempty"`          // base name of the .deb or directory
}

// Bundle is a kernel bundle in the cache.
type Bundle struct {
	Dir  string // absolute path of the bundle directory
	Desc Descriptor
}

// Open reads the bundle in dir. It does not check the files against the
// digest: Verify does.
func Open(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(abs, DescriptorFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var d Descriptor
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if d.SchemaVersion != descriptorSchema {
		return nil, fmt.Errorf("%s: unsupported schemaVersion %d", p, d.SchemaVersion)
	}
	return &Bundle{Dir: abs, Desc: d}, nil
}

// Verify recomputes the digest of the bundle's files and compares it with
// the descriptor's.
func (b *Bundle) Verify() error {
	got, err := Digest(b.Dir)
	if err != nil {
		return err
	}
	if got != b.Desc.Digest {
		return fmt.Errorf("kernel bundle %s: contents digest %s, descriptor says %s", b.Dir, got, b.Desc.Digest)
	}
	return nil
}

// Ref is the reference an image config records for this bundle, under the
// name it was asked for.
func (b *Bundle) Ref(name string) spec.KernelRef {
	ref := spec.KernelRef{Name: name, Release: b.Desc.Release, Digest: b.Desc.Digest, Microvm: b.Desc.Microvm}
	if b.Desc.Arch != spec.DefaultArch {
		ref.Arch = b.Desc.Arch // empty for amd64: config.json stays as it was
	}
	return ref
}

// KernelPath is the host path of the kernel image (bzImage).
func (b *Bundle) KernelPath() string {
	return filepath.Join(b.Dir, KernelFile)
}

// BootFile is the host path of a boot loader file: BIOSBootImage,
// BIOSCoreImage or EFIImage.
func (b *Bundle) BootFile(name string) string {
	return filepath.Join(b.Dir, BootDir, filepath.FromSlash(name))
}

// ModuleIndex reads modules.json: every module of the bundle, with Path
// relative to the modules directory.
func (b *Bundle) ModuleIndex() (*spec.ModuleIndex, error) {
	p := filepath.Join(b.Dir, ModuleIndexFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var idx spec.ModuleIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &idx, nil
}

// ModulePath is the host path of a module, given its Path in modules.json.
func (b *Bundle) ModulePath(rel string) string {
	return filepath.Join(b.Dir, ModulesDir, filepath.FromSlash(rel))
}
