// Package layouttest writes small image layouts for tests of the packages
// that read them (layout, vm): the same files and digests the assembler
// writes, around any kernel and init the test brings, without a kernel
// bundle.
package layouttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/uniforge/packer-plugin-unikernel/image/initrd"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Config is a valid config whose digests Write fills in.
func Config() spec.ImageConfig {
	return spec.ImageConfig{
		SchemaVersion: 1,
		Entrypoint:    []string{"/app", "--flag"},
		Env:           []string{"PATH=/bin", "PORT=8080"},
		WorkingDir:    "/srv",
		ExposedPorts:  []spec.Port{{Port: 8080, Protocol: "tcp"}},
		MemoryBytes:   128 << 20,
		CPUs:          1,
		Kernel:        spec.KernelRef{Name: "linux", Release: "6.1.0-test", Digest: "sha256:" + hex.EncodeToString(make([]byte, 32))},
		Cmdline:       "console=ttyS0 quiet panic=-1",
		BootModes:     []string{"direct"},
		Build:         spec.BuildInfo{Tool: "uni test"},
	}
}

// FakeKernel is enough of a bzImage to pass the layout's check.
func FakeKernel() []byte {
	k := make([]byte, 4096)
	copy(k[0x202:], "HdrS")
	return k
}

// Files are the parts of a layout; nil fields get a default.
type Files struct {
	Kernel []byte            // default FakeKernel()
	Rootfs []byte            // default 8 KiB of a pattern
	Initrd map[string][]byte // more initrd files (path → content), e.g. "/init"
	// EditInit changes the init config derived from the image config before
	// it goes into the initrd.
	EditInit func(*spec.InitConfig)
	// SBOM writes sbom.spdx.json too: the document the sbom package writes
	// for a small tree, describing this rootfs.img.
	SBOM bool
}

// Write writes a layout into dir: kernel, rootfs.img, an initrd (zstd newc
// cpio by the real writer) holding cfg's init config, config.json with the
// rootfs digests filled in, and with f.SBOM sbom.spdx.json. It returns the
// config written.
func Write(dir string, cfg spec.ImageConfig, f Files) (spec.ImageConfig, error) {
	if f.Kernel == nil {
		f.Kernel = FakeKernel()
	}
	if f.Rootfs == nil {
		f.Rootfs = bytes.Repeat([]byte("rootfs!\n"), 1024)
	}
	head := make([]byte, 4096)
	copy(head, f.Rootfs)
	sb, whole := sha256.Sum256(head), sha256.Sum256(f.Rootfs)
	cfg.Rootfs = spec.RootfsRef{Type: "squashfs", Size: int64(len(f.Rootfs)),
		Digest: "sha256:" + hex.EncodeToString(whole[:]), SuperblockDigest: "sha256:" + hex.EncodeToString(sb[:])}
	ic := cfg.InitConfig()
	if f.EditInit != nil {
		f.EditInit(&ic)
	}
	icJSON, err := json.Marshal(ic)
	if err != nil {
		return cfg, err
	}
	t := rootfs.NewTree()
	if err := t.Add(rootfs.Entry{Path: spec.InitConfigPath, Mode: 0o644, Data: icJSON}); err != nil {
		return cfg, err
	}
	for p, data := range f.Initrd {
		if err := t.Add(rootfs.Entry{Path: p, Mode: 0o755, Data: data}); err != nil {
			return cfg, err
		}
	}
	if err := t.Add(rootfs.Entry{Path: "/dev", Mode: fs.ModeDir | 0o755}); err != nil {
		return cfg, err
	}
	var rd bytes.Buffer
	if err := initrd.Write(context.Background(), &rd, t); err != nil {
		return cfg, err
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return cfg, err
	}
	for name, data := range map[string][]byte{
		spec.KernelFile: f.Kernel, spec.RootfsFile: f.Rootfs, spec.InitrdFile: rd.Bytes(), spec.ConfigFile: cfgJSON,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return cfg, err
		}
	}
	if f.SBOM {
		root := rootfs.NewTree()
		if err := root.Add(rootfs.Entry{Path: cfg.Entrypoint[0], Mode: 0o755, Data: []byte("app"), Origin: rootfs.Origin{Kind: rootfs.OriginStageAdded}}); err != nil {
			return cfg, err
		}
		err := sbom.WriteFile(context.Background(), filepath.Join(dir, spec.SBOMFile), sbom.Input{
			Entrypoint: cfg.Entrypoint, Root: root, Rootfs: cfg.Rootfs, Kernel: cfg.Kernel, Tool: cfg.Build.Tool})
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}
