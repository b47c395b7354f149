package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel/deb"
	"github.com/uniforge/packer-plugin-unikernel/kernel/internal/kerneltest"
	"github.com/uniforge/packer-plugin-unikernel/kernel/modinfo"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// importCloudKernel imports the distribution's real cloud kernel into a
// fresh cache, once per test that asks.
func importCloudKernel(t *testing.T, cache string) (*Bundle, string) {
	t.Helper()
	debPath := kerneltest.CloudKernelDeb(t)
	b, err := Import(context.Background(), debPath, WithCacheDir(cache), WithName(DefaultName))
	if err != nil {
		t.Fatalf("Import(%s): %v", debPath, err)
	}
	return b, debPath
}

func TestImportCloudKernel(t *testing.T) {
	cache := t.TempDir()
	b, debPath := importCloudKernel(t, cache)
	d := b.Desc
	t.Logf("bundle %s: %s %s %s, %d modules, %d builtin, %s", d.Digest, d.Name, d.Release, d.Version, d.Modules, len(d.Builtin), d.BootLoader)

	if !strings.HasPrefix(filepath.Base(debPath), d.Name+"_"+d.Version) {
		t.Errorf("descriptor names %s %s, the .deb is %s", d.Name, d.Version, filepath.Base(debPath))
	}
	if want := strings.TrimPrefix(d.Name, "linux-image-"); d.Release != want {
		t.Errorf("release %q, package name says %q", d.Release, want)
	}
	if rel, arch, err := readBzImageRelease(b.KernelPath()); err != nil || rel != d.Release || arch != d.Arch {
		t.Errorf("kernel image: release %q arch %q (%v); descriptor %q %q", rel, arch, err, d.Release, d.Arch)
	}
	if cfg, err := os.ReadFile(filepath.Join(b.Dir, ConfigFile)); err != nil || !bytes.Contains(cfg, []byte("\nCONFIG_SQUASHFS=m\n")) {
		t.Errorf("bundle config lacks CONFIG_SQUASHFS=m (err %v)", err)
	}
	if d.Modules < 500 {
		t.Errorf("only %d modules", d.Modules)
	}
	if err := b.Verify(); err != nil {
		t.Error(err)
	}
	// Measured: this kernel boots in 96 MiB and deadlocks in 80 MiB.
	if m, err := b.MinMemory(); err != nil || m != 96<<20 {
		t.Errorf("MinMemory: %d MiB, %v; want 96 MiB", m>>20, err)
	}

	bootImg, err := os.ReadFile(b.BootFile(BIOSBootImage))
	if err != nil || len(bootImg) != 512 || !bytes.Equal(bootImg[510:], []byte{0x55, 0xaa}) {
		t.Errorf("boot.img: %d bytes, err %v", len(bootImg), err)
	}
	efi, err := os.ReadFile(b.BootFile(EFIImage))
	if err != nil || !bytes.HasPrefix(efi, []byte("MZ")) {
		t.Errorf("BOOTX64.EFI is not a PE image (err %v)", err)
	}
	// The EFI image stores the embedded config verbatim (core.img compresses it).
	if !bytes.Contains(efi, []byte(grubEmbeddedConfig)) {
		t.Errorf("BOOTX64.EFI lacks the embedded config")
	}
	if core := mustRead(t, b.BootFile(BIOSCoreImage)); len(core) < 1024 {
		t.Errorf("core.img is %d bytes", len(core))
	}

	t.Run("SameDigestTwice", func(t *testing.T) {
		again, err := Import(context.Background(), debPath, WithCacheDir(cache))
		if err != nil {
			t.Fatal(err)
		}
		if again.Desc.Digest != d.Digest || again.Dir != b.Dir {
			t.Errorf("second import: %s in %s, first %s in %s", again.Desc.Digest, again.Dir, d.Digest, b.Dir)
		}
		entries, _ := os.ReadDir(cache)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 2 { // the bundle and the name index
			t.Errorf("cache holds %v after two imports", names)
		}
	})

	t.Run("FromDirectoryWithCompressedModules", func(t *testing.T) {
		root := t.TempDir()
		if _, err := deb.Extract(context.Background(), debPath, root, wantedDebPath); err != nil {
			t.Fatal(err)
		}
		idx, err := b.ModuleIndex()
		if err != nil {
			t.Fatal(err)
		}
		modDir := filepath.Join(root, "lib", "modules", d.Release)
		for _, c := range []struct{ name, suffix string }{{"virtio_blk", ".xz"}, {"squashfs", ".zst"}, {"virtio_net", ".gz"}} {
			compressModule(t, filepath.Join(modDir, filepath.FromSlash(findModule(idx.Modules, c.name).Path)), c.suffix)
		}
		other := t.TempDir()
		fromDir, err := Import(context.Background(), root, WithCacheDir(other))
		if err != nil {
			t.Fatal(err)
		}
		if fromDir.Desc.Source.Kind != "dir" || fromDir.Desc.Release != d.Release || fromDir.Desc.Name != "linux-"+d.Release {
			t.Errorf("descriptor from a directory: %+v", fromDir.Desc)
		}
		if a, b := mustRead(t, filepath.Join(b.Dir, ModuleIndexFile)), mustRead(t, filepath.Join(fromDir.Dir, ModuleIndexFile)); !bytes.Equal(a, b) {
			t.Errorf("modules.json differs between the .deb and the directory with compressed modules")
		}
		for _, name := range []string{"virtio_blk", "squashfs", "virtio_net"} {
			rel := findModule(idx.Modules, name).Path
			if !bytes.Equal(mustRead(t, b.ModulePath(rel)), mustRead(t, fromDir.ModulePath(rel))) {
				t.Errorf("%s: decompressed module differs from the original", name)
			}
		}
		if !bytes.Equal(mustRead(t, b.KernelPath()), mustRead(t, fromDir.KernelPath())) {
			t.Error("kernel differs")
		}
	})

	t.Run("ListAndResolve", func(t *testing.T) {
		descs, err := List(WithCacheDir(cache))
		if err != nil || len(descs) != 1 || descs[0].Digest != d.Digest || descs[0].Release != d.Release {
			t.Fatalf("List: %+v, %v", descs, err)
		}
		aliases, err := Aliases(WithCacheDir(cache))
		if err != nil || aliases[DefaultName] != d.Digest {
			t.Errorf("Aliases: %v, %v", aliases, err)
		}
		for _, name := range []string{"", DefaultName, d.Digest, digestHex(d.Digest)[:16]} {
			got, err := Resolve(context.Background(), name, WithCacheDir(cache), WithoutDistro())
			if err != nil || got.Desc.Digest != d.Digest {
				t.Errorf("Resolve(%q): %v", name, err)
			}
		}
		if _, err := Resolve(context.Background(), "no-such-kernel", WithCacheDir(cache), WithoutDistro()); err == nil {
			t.Error("Resolve of an unknown name succeeded")
		}
	})

	t.Run("ModinfoMatchesKmod", func(t *testing.T) {
		modinfoBin := testtool.Need(t, "modinfo")[0] // kmod's: the test oracle
		idx, err := b.ModuleIndex()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"virtio_blk", "virtio_rng", "hv_storvsc", "squashfs"} {
			m := findModule(idx.Modules, name)
			if m == nil {
				t.Errorf("%s not in modules.json", name)
				continue
			}
			ko := b.ModulePath(m.Path)
			// kmod prints depends= as stored, some names with '-'; ours use '_'.
			if got, want := strings.Join(m.Depends, ","), modinfo.NormalizeName(kmodField(t, modinfoBin, "depends", ko)); got != want {
				t.Errorf("%s depends: %q, modinfo says %q", name, got, want)
			}
			if got, want := strings.Join(m.Aliases, "\n"), kmodField(t, modinfoBin, "alias", ko); got != want {
				t.Errorf("%s aliases:\n%s\nmodinfo says:\n%s", name, got, want)
			}
		}
	})

	t.Run("DefaultModuleSet", func(t *testing.T) {
		mods, err := b.ModuleSet(DefaultModules()...)
		if err != nil {
			t.Fatal(err)
		}
		checkDependencyOrder(t, mods, d.Builtin)
		var names []string
		for _, m := range mods {
			names = append(names, m.Name)
			if _, err := os.Stat(m.Path); err != nil {
				t.Errorf("module %s: %v", m.Name, err)
			}
		}
		t.Logf("default set: %d modules: %s", len(mods), strings.Join(names, " "))
		for _, want := range []string{"virtio_blk", "virtio", "virtio_ring", "scsi_mod", "squashfs"} {
			if findModule(mods, want) == nil {
				t.Errorf("default set lacks %s", want)
			}
		}
		if _, err := b.ModuleSet("virtio_blk", "no_such_mod", "another_bogus"); err == nil ||
			!strings.Contains(err.Error(), "no_such_mod") || !strings.Contains(err.Error(), "another_bogus") {
			t.Errorf("unknown modules: error %v does not name them", err)
		}
	})
}

// compressModule replaces the module at p by p+suffix, compressed.
func compressModule(t *testing.T, p, suffix string) {
	t.Helper()
	data := mustRead(t, p)
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch suffix {
	case ".xz":
		w, err = xz.NewWriter(&buf)
	case ".zst":
		w, err = zstd.NewWriter(&buf)
	case ".gz":
		w = gzip.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+suffix, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func findModule(mods []spec.Module, name string) *spec.Module {
	for i := range mods {
		if mods[i].Name == name {
			return &mods[i]
		}
	}
	return nil
}

func kmodField(t *testing.T, modinfoBin, field, ko string) string {
	t.Helper()
	out, err := exec.Command(modinfoBin, "-F", field, ko).Output()
	if err != nil {
		t.Fatalf("modinfo -F %s %s: %v", field, ko, err)
	}
	return strings.TrimRight(string(out), "\n")
}

// checkDependencyOrder fails if a module comes before one it depends on.
func checkDependencyOrder(t *testing.T, mods []spec.Module, builtin []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, b := range builtin {
		seen[b] = true
	}
	for _, m := range mods {
		for _, dep := range m.Depends {
			if !seen[dep] {
				t.Errorf("%s comes before its dependency %s", m.Name, dep)
			}
		}
		if seen[m.Name] {
			t.Errorf("%s listed twice or also built in", m.Name)
		}
		seen[m.Name] = true
	}
}

// kerneltestDeb is the real cloud kernel .deb (a download: not in -short).
func kerneltestDeb(t *testing.T) string {
	t.Helper()
	return kerneltest.CloudKernelDeb(t)
}
