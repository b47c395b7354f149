// Package floor makes the benchmarks' floor image: a copy of an image layout
// whose initrd holds only a static init that powers the VM off at once
// (bench/floorinit) and the image's init config, so a boot of it measures
// QEMU, firmware and kernel and nothing of uni's init or the app.
package floor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/uniforge/packer-plugin-unikernel/image/initrd"
	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Layout copies a layout with its initrd replaced by one holding only
// the floor init and the image's init config (which Verify checks).
func Layout(dir, floorInit string) (string, error) {
	out, err := os.MkdirTemp("", "uni-floor-")
	if err != nil {
		return "", err
	}
	for _, f := range []string{spec.KernelFile, spec.RootfsFile} {
		if err := atomicfile.CopyFile(filepath.Join(dir, f), filepath.Join(out, f), 0o644); err != nil {
			return "", err
		}
	}
	// config.json without the initrd's digest: the floor's initrd is another.
	data, err := os.ReadFile(filepath.Join(dir, spec.ConfigFile))
	if err != nil {
		return "", err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", err
	}
	delete(cfg, "initrd")
	if data, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(out, spec.ConfigFile), data, 0o644); err != nil {
		return "", err
	}
	bin, err := os.ReadFile(floorInit)
	if err != nil {
		return "", err
	}
	rd, err := os.Open(filepath.Join(dir, spec.InitrdFile))
	if err != nil {
		return "", err
	}
	initConfig, err := initrd.ReadFile(rd, spec.InitConfigPath, 1<<20)
	rd.Close()
	if err != nil {
		return "", err
	}
	t := rootfs.NewTree()
	t.Add(rootfs.Entry{Path: spec.InitConfigPath, Mode: 0o644, Data: initConfig})
	t.Add(rootfs.Entry{Path: "/init", Mode: 0o755, Data: bin})
	t.Add(rootfs.Entry{Path: "/dev/console", Mode: os.ModeDevice | os.ModeCharDevice | 0o600, Rdev: 5<<8 | 1})
	f, err := os.Create(filepath.Join(out, spec.InitrdFile))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return out, initrd.Write(context.Background(), f, t)
}
