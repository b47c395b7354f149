package kbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/kernel/deb"
	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
)

// source is where the kernel's source comes from.
type source struct {
	kind    string // "apt" (a package apt knows), "deb" (a file) or "dir"
	name    string // package name, or the directory
	version string // package version, or the tree's kernelversion
	id      string // what the build key says of it
	pkg     distro.Package
	path    string // the .deb or the directory
	srcPkg  string // the source package ("linux 6.1.192-3")
}

// findSource settles what Spec.Source names, without downloading anything:
// apt's index gives a package's version and SHA256, which is all the key needs.
func findSource(ctx context.Context, s string) (*source, error) {
	if s == "" {
		s = DefaultSource
	}
	if fi, err := os.Stat(s); err == nil {
		abs, err := filepath.Abs(s)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			return dirSource(ctx, abs)
		}
		return debSource(abs)
	}
	if !strings.HasPrefix(s, "linux-source-") || strings.ContainsAny(s, "/=") {
		return nil, fmt.Errorf("kernel source %q: not a directory, a .deb, or a linux-source-* package name", s)
	}
	pkg, err := distro.Locate(ctx, s, "")
	if err != nil {
		return nil, fmt.Errorf("kernel source %s: %w", s, err)
	}
	return &source{
		kind: "apt", name: s, version: pkg.Version, pkg: pkg,
		id:     fmt.Sprintf("deb %s %s sha256:%s", s, pkg.Version, pkg.SHA256),
		srcPkg: "linux " + pkg.Version,
	}, nil
}

func debSource(p string) (*source, error) {
	ctl, err := deb.ReadControl(p)
	if err != nil {
		return nil, fmt.Errorf("kernel source: %w", err)
	}
	name, version := ctl.Get("Package"), ctl.Get("Version")
	if !strings.HasPrefix(name, "linux-source") {
		return nil, fmt.Errorf("kernel source %s: package %s is not a linux-source package", p, name)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("kernel source %s: %w", p, err)
	}
	srcPkg := ctl.Get("Source")
	if srcPkg == "" {
		srcPkg = "linux"
	}
	return &source{
		kind: "deb", name: name, version: version, path: p,
		id:     fmt.Sprintf("deb %s %s sha256:%s", name, version, hex.EncodeToString(h.Sum(nil))),
		srcPkg: srcPkg + " " + version,
	}, nil
}

// dirSource describes a source tree by its kernelversion and a digest of
// its files' paths, sizes, modes and times: an edit changes the key without
// reading a gigabyte of source.
func dirSource(ctx context.Context, dir string) (*source, error) {
	if _, err := os.Stat(filepath.Join(dir, "Kconfig")); err != nil {
		return nil, fmt.Errorf("kernel source %s: not a kernel source tree (no Kconfig)", dir)
	}
	out, err := exec.CommandContext(ctx, "make", "-s", "-C", dir, "kernelversion").Output()
	if err != nil {
		return nil, fmt.Errorf("kernel source %s: make kernelversion: %w", dir, err)
	}
	version := strings.TrimSpace(string(out))
	h := sha256.New()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %o %d %d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel source %s: %w", dir, err)
	}
	return &source{
		kind: "dir", name: dir, version: version, path: dir,
		id:     fmt.Sprintf("dir %s sha256:%s", version, hex.EncodeToString(h.Sum(nil))),
		srcPkg: "linux " + version,
	}, nil
}

// describe is bundle.json's source for a kernel built from s.
func (s *source) describe() kernel.Source {
	k := kernel.Source{Kind: "build", Package: s.name, Version: s.version, SourcePackage: s.srcPkg}
	switch s.kind {
	case "apt":
		k.File = s.pkg.File
	case "deb":
		k.File = filepath.Base(s.path)
	default:
		k.Package, k.File = "", filepath.Base(s.path)
	}
	return k
}

// unpack makes the source tree in work and returns it; a directory source
// is used where it is (the build then writes only to its own object
// directory).
func (s *source) unpack(ctx context.Context, work string, log io.Writer) (string, error) {
	debPath := s.path
	switch s.kind {
	case "dir":
		return s.path, nil
	case "apt":
		p, err := distro.Download(ctx, s.pkg, work, progress.New(log))
		if err != nil {
			return "", err
		}
		debPath = p
	}
	start := time.Now()
	fmt.Fprintf(log, "unpacking %s %s\n", s.name, s.version)
	debDir := filepath.Join(work, "deb")
	if err := os.Mkdir(debDir, 0o755); err != nil {
		return "", err
	}
	isTarball := func(name string) bool {
		return strings.HasPrefix(name, "usr/src/linux-source-") && strings.HasSuffix(name, ".tar.xz")
	}
	pkg, err := deb.Extract(ctx, debPath, debDir, isTarball)
	if err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	if len(pkg.Files) != 1 {
		return "", fmt.Errorf("kernel source %s: want one usr/src/linux-source-*.tar.xz, found %d", debPath, len(pkg.Files))
	}
	tarball := filepath.Join(debDir, filepath.FromSlash(pkg.Files[0]))
	srcDir := filepath.Join(work, "src")
	if err := os.Mkdir(srcDir, 0o755); err != nil {
		return "", err
	}
	// GNU tar with xz: several times faster than a Go xz reader on a
	// gigabyte of source. The archive is apt-checked (or the caller's own).
	cmd := exec.CommandContext(ctx, "tar", "-xJf", tarball, "-C", srcDir, "--strip-components=1", "--no-same-owner", "--no-same-permissions")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("kernel source: unpacking %s: %w: %s", filepath.Base(tarball), err, strings.TrimSpace(string(out)))
	}
	os.RemoveAll(debDir)
	if s.kind == "apt" {
		os.Remove(debPath)
	}
	fmt.Fprintf(log, "unpacked %s %s in %s\n", s.name, s.version, time.Since(start).Round(100*time.Millisecond))
	return srcDir, nil
}
