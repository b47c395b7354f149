package kernel

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/kernel/deb"
	"github.com/uniforge/packer-plugin-unikernel/kernel/modinfo"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Import makes a bundle from src, a .deb of a kernel image package or a
// directory holding a kernel image (boot/vmlinuz-<rel>, vmlinuz*, bzImage)
// and its lib/modules/<rel>/ tree, and stores it in the cache. The bundle
// is assembled in a temporary directory and renamed into place; importing
// the same thing again leaves the cache as it was and returns the bundle
// already there.
func Import(ctx context.Context, src string, opts ...Option) (*Bundle, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return importSource(ctx, cfg, src)
}

// importSource is Import with its options read.
func importSource(ctx context.Context, cfg *config, src string) (*Bundle, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("kernel import: %w", err)
	}
	if err := cfg.prepare(); err != nil {
		return nil, err
	}
	work, done, err := workDir(cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	stage := filepath.Join(work, "bundle")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return nil, err
	}

	root := src
	desc := Descriptor{SchemaVersion: descriptorSchema, Source: Source{Kind: "dir", File: filepath.Base(filepath.Clean(src))}}
	if !fi.IsDir() {
		root = filepath.Join(work, "deb")
		if err := os.Mkdir(root, 0o755); err != nil {
			return nil, err
		}
		pkg, err := unpackDeb(ctx, cfg, src, fi.Size(), root)
		if err != nil {
			return nil, fmt.Errorf("kernel import: %w", err)
		}
		desc.Source = Source{
			Kind:          "deb",
			Package:       pkg.Control.Get("Package"),
			Version:       pkg.Control.Get("Version"),
			SourcePackage: debSourcePackage(pkg.Control),
			File:          filepath.Base(src),
		}
		desc.Name = desc.Source.Package
		desc.Version = desc.Source.Version
		desc.Arch = pkg.Control.Get("Architecture")
	}
	if err := assemble(ctx, cfg, root, stage, &desc); err != nil {
		return nil, fmt.Errorf("kernel import %s: %w", src, err)
	}
	b, err := install(ctx, cfg, stage, desc)
	if err != nil {
		return nil, err
	}
	return nameAsAsked(cfg, b)
}

// unpackDeb extracts the kernel's files of the .deb at src into root,
// reporting progress by the compressed bytes read: decompressing the
// data archive is most of an import's time.
func unpackDeb(ctx context.Context, cfg *config, src string, size int64, root string) (*deb.Package, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	task := cfg.progress.Start("unpacking", "unpacked", filepath.Base(src), size)
	pkg, err := deb.ExtractReader(ctx, io.TeeReader(f, task), root, wantedDebPath)
	if err != nil {
		task.Fail()
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	task.Done()
	return pkg, nil
}

// wantedDebPath says which files of a kernel package a bundle needs.
func wantedDebPath(name string) bool {
	switch {
	case strings.HasPrefix(name, "boot/vmlinuz-"), strings.HasPrefix(name, "boot/config-"):
		return true
	case strings.HasPrefix(name, "lib/modules/"), strings.HasPrefix(name, "usr/lib/modules/"):
		return true
	}
	return name == "boot" || name == "lib" || name == "usr" || name == "usr/lib"
}

// debSourcePackage names the package whose source the kernel was built
// from: Built-Using names it for Debian's signed kernels, whose Source is
// only the signing wrapper.
func debSourcePackage(c deb.Control) string {
	for _, d := range c.Depends("Built-Using") {
		if d.Name == "linux" || strings.HasPrefix(d.Name, "linux-") {
			return strings.TrimSpace(d.Name + " " + d.Version)
		}
	}
	if s := c.Get("Source"); s != "" {
		return s
	}
	return c.Get("Package")
}

// assemble writes the bundle's files for the kernel found below root into
// stage and fills in the descriptor, all but its digest.
func assemble(ctx context.Context, cfg *config, root, stage string, desc *Descriptor) error {
	tree, err := findKernelTree(root)
	if err != nil {
		return err
	}
	desc.Release = tree.release
	if desc.Name == "" {
		desc.Name = "linux-" + tree.release
	}
	if desc.Version == "" {
		desc.Version = tree.release
	}
	if desc.Arch == "" {
		desc.Arch = tree.arch
	}
	if err := copyFile(tree.kernel, filepath.Join(stage, KernelFile)); err != nil {
		return err
	}
	if tree.config != "" {
		if err := copyFile(tree.config, filepath.Join(stage, ConfigFile)); err != nil {
			return err
		}
	}
	idx := spec.ModuleIndex{KernelRelease: tree.release, Modules: []spec.Module{}}
	if desc.Builtin == nil {
		desc.Builtin = []string{} // a built kernel's come with desc
	}
	if tree.config != "" {
		if desc.Microvm, err = bootsOnMicrovm(tree.config); err != nil {
			return err
		}
	}
	if tree.modulesDir != "" {
		cfg.progress.Printf("indexing the modules of kernel %s", tree.release)
		if idx.Modules, err = copyModules(ctx, tree.modulesDir, filepath.Join(stage, ModulesDir)); err != nil {
			return err
		}
		if desc.Builtin, err = readBuiltin(tree.modulesDir); err != nil {
			return err
		}
	}
	desc.Modules = len(idx.Modules)
	if err := writeJSON(filepath.Join(stage, ModuleIndexFile), idx); err != nil {
		return err
	}
	cfg.progress.Printf("making the GRUB boot loaders")
	if desc.BootLoader, err = writeBootLoaders(ctx, cfg.grubLibDir, filepath.Join(stage, BootDir)); err != nil {
		return err
	}
	desc.License = licenseSummary(desc)
	return writeNewFile(filepath.Join(stage, LicenseFile), strings.NewReader(licenseText(desc)))
}

// moduleSuffixes are the module file endings, compressed or not.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// copyModules copies every module below src into dst, decompressed, keeping
// its path, and returns the module table sorted by name.
func copyModules(ctx context.Context, src, dst string) ([]spec.Module, error) {
	var mods []spec.Module
	where := map[string]string{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Links (build/, source/ of installed kernels) are not followed.
		if !d.Type().IsRegular() {
			return nil
		}
		suffix := ""
		for _, s := range moduleSuffixes {
			if strings.HasSuffix(d.Name(), s) {
				suffix = s
			}
		}
		if suffix == "" {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = strings.TrimSuffix(filepath.ToSlash(rel), strings.TrimPrefix(suffix, ".ko"))
		out := filepath.Join(dst, filepath.FromSlash(rel))
		if err := decompressModule(ctx, p, out); err != nil {
			return err
		}
		info, err := modinfo.ReadFile(out)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if prev, dup := where[info.Name]; dup {
			return fmt.Errorf("module %s is both %s and %s", info.Name, prev, rel)
		}
		where[info.Name] = rel
		mods = append(mods, spec.Module{Name: info.Name, Path: rel, Depends: info.Depends, Aliases: info.Aliases})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	return mods, nil
}

// decompressModule writes the module at src, decompressed by its suffix, to dst.
func decompressModule(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var r io.Reader = bufio.NewReader(ctxio.Reader(ctx, in))
	switch path.Ext(src) {
	case ".xz":
		if r, err = xz.NewReader(r); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	case ".zst":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer z.Close()
		r = z
	case ".gz":
		z, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer z.Close()
		r = z
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := writeNewFile(dst, r); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// readBuiltin reads modules.builtin of a modules tree; a tree without one
// has no built-in modules that we know of.
func readBuiltin(modulesDir string) ([]string, error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := modinfo.ParseBuiltin(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return names, nil
}

// writeNewFile writes r to a new file p with mode 0644, whatever the umask.
func writeNewFile(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeJSON writes v, indented and newline-terminated, to a new file p.
func writeJSON(p string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeNewFile(p, strings.NewReader(string(data)+"\n"))
}

func licenseSummary(d *Descriptor) string {
	src := d.Source.SourcePackage
	if src == "" {
		src = "the kernel source it was built from"
	}
	return fmt.Sprintf("Linux kernel and modules: GPL-2.0-only, source: %s; boot loaders: GRUB, GPL-3.0-or-later", src)
}

func licenseText(d *Descriptor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Kernel bundle %s (%s, %s)\n\n", d.Name, d.Release, d.Arch)
	b.WriteString("kernel and modules/ are the Linux kernel, licensed under the GNU General\n")
	b.WriteString("Public License version 2 (GPL-2.0-only, with the Linux-syscall-note).\n")
	switch d.Source.Kind {
	case "deb":
		fmt.Fprintf(&b, "They come from the binary package %s %s (%s).\n", d.Source.Package, d.Source.Version, d.Source.File)
		fmt.Fprintf(&b, "Their source is the source package %s; on Debian: apt-get source %s\n",
			d.Source.SourcePackage, strings.Replace(d.Source.SourcePackage, " ", "=", 1))
	case "build":
		fmt.Fprintf(&b, "uni built them from the kernel source %s (%s), configured as the\n", d.Source.SourcePackage, d.Source.File)
		b.WriteString("file config says; whoever distributes them must offer that source.\n")
	default:
		fmt.Fprintf(&b, "They were imported from the directory %s; whoever distributes them must\n", d.Source.File)
		b.WriteString("offer the kernel source they were built from.\n")
	}
	b.WriteString("\nboot/ holds GNU GRUB images (GPL-3.0-or-later) made with the host's GRUB\n")
	fmt.Fprintf(&b, "(%s, from the Debian packages grub-pc-bin and grub-efi-amd64-bin).\n", d.BootLoader)
	return b.String()
}
