// Package image assembles an image layout (docs/image-layout.md):
// kernel, initrd, rootfs.img, config.json and, on request, disk.img. It is
// the one place that turns a root tree, an image config and a kernel bundle
// into bytes, so the CLI, the Packer builder and the BuildKit frontend give
// the same outputs for the same inputs.
package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/image/disk"
	"github.com/uniforge/packer-plugin-unikernel/image/initrd"
	"github.com/uniforge/packer-plugin-unikernel/image/squashfs"
	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/initbin"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// DefaultCmdline is the kernel command line of every image. The console is
// the first serial port; quiet keeps the serial console (slow under
// emulation) for the app; panic=-1 turns a kernel panic into a reboot,
// which QEMU's -no-reboot turns into an exit. The rest skips probing that a
// VM does not need (legacy keyboard controller, TSC calibration checks).
const DefaultCmdline = "console=ttyS0 quiet panic=-1 tsc=reliable no_timer_check i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd cryptomgr.notests random.trust_cpu=on"

// consoleDev is /dev/console's device number, 5:1, in Linux's encoding.
const consoleDev = 5<<8 | 1

// Input is what an image is made of.
type Input struct {
	Root   *rootfs.Tree     // the app's root: the closure, COPYs and INCLUDEs
	Config spec.ImageConfig // everything but Kernel, Rootfs and Cmdline, which Assemble fills in
	Bundle *kernel.Bundle
	// KernelName is the name the bundle was asked for (KERNEL), recorded in config.json.
	KernelName string
	Disk       bool  // also write disk.img
	DataSize   int64 // bytes of an empty data partition on disk.img
	ModTime    int64 // every timestamp in every output (SOURCE_DATE_EPOCH)
	// Name is the app's name in sbom.spdx.json (default: the entrypoint's
	// program name).
	Name string
}

// Assemble writes the image layout of in to dir. Everything is written into
// a temporary directory beside dir and renamed over it at the end, so a
// failed build leaves dir as it was; dir is replaced only if it is empty or
// an earlier image layout (see PrepareOutput).
func Assemble(ctx context.Context, in Input, dir string) (*spec.ImageConfig, error) {
	var cfg *spec.ImageConfig
	err := WriteOutput(dir, func(tmp string) error {
		var err error
		cfg, err = writeLayout(ctx, in, tmp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// WriteLayout writes the image layout of in straight into dir, an empty
// directory the caller owns and discards on error: the BuildKit
// frontend's output mount, which cannot be renamed over. Everyone else
// calls Assemble.
func WriteLayout(ctx context.Context, in Input, dir string) (*spec.ImageConfig, error) {
	kids, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(kids) != 0 {
		return nil, &OutputError{Dir: dir, Reason: fmt.Sprintf("not empty (holds %s)", kids[0].Name())}
	}
	return writeLayout(ctx, in, dir)
}

func writeLayout(ctx context.Context, in Input, dir string) (*spec.ImageConfig, error) {
	cfg := in.Config
	cfg.SchemaVersion = 1
	cfg.Kernel = in.Bundle.Ref(in.KernelName)
	if cfg.Cmdline == "" {
		cfg.Cmdline = DefaultCmdline
	}
	cfg.BootModes = []string{"direct"}
	if in.Disk {
		cfg.BootModes = []string{"direct", "uefi", "bios"}
	}

	rootfsPath := filepath.Join(dir, spec.RootfsFile)
	if err := squashfs.WriteFile(ctx, rootfsPath, in.Root, squashfs.WithModTime(in.ModTime)); err != nil {
		return nil, fmt.Errorf("write %s: %w", spec.RootfsFile, err)
	}
	ref, err := layout.HashRootfs(ctx, rootfsPath)
	if err != nil {
		return nil, err
	}
	cfg.Rootfs = ref
	if cfg.Hostname == "" {
		cfg.Hostname = DefaultHostname(ref)
	}

	// The SBOM names the files Root holds, which are rootfs.img's; its
	// namespace is the rootfs digest, its date SOURCE_DATE_EPOCH. It
	// describes the image and config.json does not record it: the origins
	// it names differ between uni build and BuildKit, config.json must not.
	err = sbom.WriteFile(ctx, filepath.Join(dir, spec.SBOMFile), sbom.Input{
		Name:       in.Name,
		Entrypoint: cfg.Entrypoint,
		Root:       in.Root,
		Rootfs:     ref,
		Kernel:     cfg.Kernel,
		Created:    in.ModTime,
		Tool:       cfg.Build.Tool,
	})
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", spec.SBOMFile, err)
	}

	if err := atomicfile.CopyFile(in.Bundle.KernelPath(), filepath.Join(dir, spec.KernelFile), 0o644); err != nil {
		return nil, fmt.Errorf("copy the kernel: %w", err)
	}
	if err := WriteInitrd(ctx, filepath.Join(dir, spec.InitrdFile), in.Bundle, cfg.InitConfig(), in.ModTime); err != nil {
		return nil, fmt.Errorf("write %s: %w", spec.InitrdFile, err)
	}
	if in.Disk {
		if err := WriteDisk(ctx, dir, in.Bundle, cfg.Cmdline, in.DataSize, in.ModTime); err != nil {
			return nil, err
		}
	}
	// config.json records the digest of every file of the image, so that a
	// layout can be verified whole before it boots (layout.Verify).
	for _, f := range []struct {
		name string
		ref  **spec.FileRef
		want bool
	}{{spec.KernelFile, &cfg.KernelFile, true}, {spec.InitrdFile, &cfg.Initrd, true}, {spec.DiskFile, &cfg.Disk, in.Disk}} {
		if !f.want {
			continue
		}
		r, err := layout.HashFile(ctx, filepath.Join(dir, f.name))
		if err != nil {
			return nil, err
		}
		*f.ref = &r
	}
	// Never write a config that uni run would refuse.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("the image config is not valid: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return &cfg, atomicfile.WriteBytes(filepath.Join(dir, spec.ConfigFile), append(b, '\n'), 0o644)
}

// WriteDisk writes disk.img of the layout in dir, from its other files and
// the bundle's boot loaders.
func WriteDisk(ctx context.Context, dir string, b *kernel.Bundle, cmdline string, dataSize, modTime int64) error {
	err := disk.Write(ctx, filepath.Join(dir, spec.DiskFile), disk.Inputs{
		Kernel:        filepath.Join(dir, spec.KernelFile),
		Initrd:        filepath.Join(dir, spec.InitrdFile),
		Rootfs:        filepath.Join(dir, spec.RootfsFile),
		Cmdline:       cmdline,
		BIOSBootImage: b.BootFile(kernel.BIOSBootImage),
		BIOSCoreImage: b.BootFile(kernel.BIOSCoreImage),
		EFIImage:      b.BootFile(kernel.EFIImage),
		DataSize:      dataSize,
	}, disk.WithModTime(modTime))
	if err != nil {
		return fmt.Errorf("write %s: %w", spec.DiskFile, err)
	}
	return nil
}

// DefaultHostname is the guest's hostname unless the config names one:
// like Docker's container id, short hex that tells images apart, here
// taken from the rootfs digest so that it is the same on every build.
func DefaultHostname(r spec.RootfsRef) string {
	hex := strings.TrimPrefix(r.Digest, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return "uni-" + hex
}

// InitrdOption adjusts WriteInitrd.
type InitrdOption func(*initrdOptions)

type initrdOptions struct {
	init        []byte
	initPath    string
	modules     []string
	compression initrd.Compression
}

// WithInitBinary puts bin as the init instead of the embedded one.
func WithInitBinary(bin []byte) InitrdOption { return func(o *initrdOptions) { o.init = bin } }

// WithInitFile puts the file at p as the init (tests of a freshly built init).
func WithInitFile(p string) InitrdOption { return func(o *initrdOptions) { o.initPath = p } }

// WithModules carries these modules (and what they depend on) instead of
// kernel.DefaultModules().
func WithModules(names ...string) InitrdOption { return func(o *initrdOptions) { o.modules = names } }

// WithInitrdCompression picks the initrd's compression (default zstd).
func WithInitrdCompression(c initrd.Compression) InitrdOption {
	return func(o *initrdOptions) { o.compression = c }
}

// WriteInitrd writes the initrd at p: the init, its config ic, and the
// modules the targets need from bundle b with the index the init loads
// them by (no modules when b is nil).
func WriteInitrd(ctx context.Context, p string, b *kernel.Bundle, ic spec.InitConfig, modTime int64, opts ...InitrdOption) error {
	o := initrdOptions{init: initbin.Binary(), modules: kernel.DefaultModules(), compression: initrd.Zstd}
	for _, opt := range opts {
		opt(&o)
	}
	t := rootfs.NewTree()
	if b != nil {
		if err := addModules(t, b, o.modules); err != nil {
			return err
		}
	}
	j, err := json.Marshal(ic)
	if err != nil {
		return err
	}
	if err := t.Add(rootfs.Entry{Path: spec.InitConfigPath, Mode: 0o644, Data: j}); err != nil {
		return err
	}
	initEntry := rootfs.Entry{Path: spec.InitPath, Mode: 0o755, Data: o.init}
	if o.initPath != "" {
		fi, err := os.Stat(o.initPath)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		initEntry = rootfs.Entry{Path: spec.InitPath, Mode: 0o755, HostPath: o.initPath, Size: fi.Size()}
	}
	if err := t.Add(initEntry); err != nil {
		return err
	}
	// The console device, so the init's first words reach it before devtmpfs is mounted.
	if err := t.Add(rootfs.Entry{Path: "/dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Rdev: consoleDev}); err != nil {
		return err
	}
	for _, d := range append([]string{spec.NewRootPath}, spec.MountPoints...) {
		if err := t.Add(rootfs.Entry{Path: d, Mode: fs.ModeDir | 0o755}); err != nil {
			return err
		}
	}
	return atomicfile.Write(p, 0o644, func(w io.Writer) error {
		return initrd.Write(ctx, w, t, initrd.WithModTime(modTime), initrd.WithCompression(o.compression))
	})
}

// addModules puts the modules named (with their dependencies) and their
// index into the initrd tree t.
func addModules(t *rootfs.Tree, b *kernel.Bundle, names []string) error {
	mods, err := b.ModuleSet(names...)
	if err != nil {
		return err
	}
	idx := spec.ModuleIndex{KernelRelease: b.Desc.Release, Always: []string{"squashfs"}}
	for _, m := range mods {
		inInitrd := path.Join("/lib/modules", m.Name+".ko")
		fi, err := os.Stat(m.Path)
		if err != nil {
			return fmt.Errorf("kernel bundle module %s: %w", m.Name, err)
		}
		if err := t.Add(rootfs.Entry{Path: inInitrd, Mode: 0o644, HostPath: m.Path, Size: fi.Size()}); err != nil {
			return err
		}
		m.Path = inInitrd
		idx.Modules = append(idx.Modules, m)
	}
	if !hasModule(mods, "squashfs") {
		idx.Always = nil // built into this kernel
	}
	j, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return t.Add(rootfs.Entry{Path: spec.ModuleIndexPath, Mode: 0o644, Data: j})
}

func hasModule(mods []spec.Module, name string) bool {
	for _, m := range mods {
		if strings.EqualFold(m.Name, name) {
			return true
		}
	}
	return false
}
