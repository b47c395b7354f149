package e2e

import (
	"archive/tar"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// debs holds the .deb files that `apt-get download` fetched in this test
// run, by package name, so each package is downloaded once per run.
// TestMain removes the directory.
var debs struct {
	mu    sync.Mutex
	dir   string
	files map[string]string
}

// removeDebs deletes the run's .deb cache.
func removeDebs() {
	debs.mu.Lock()
	defer debs.mu.Unlock()
	if debs.dir != "" {
		os.RemoveAll(debs.dir)
	}
	debs.dir, debs.files = "", nil
}

// debianDeb returns the path of the Debian package pkg's .deb (the
// candidate version of the machine's apt lists), downloading it with
// `apt-get download` on first use in this run.
func debianDeb(t *testing.T, pkg string) string {
	t.Helper()
	testtool.NeedDownload(t, "Debian package "+pkg)
	testtool.Need(t, "apt-get", "dpkg-deb")
	debs.mu.Lock()
	defer debs.mu.Unlock()
	if f, ok := debs.files[pkg]; ok {
		return f
	}
	if debs.dir == "" {
		dir, err := os.MkdirTemp("", "uni-e2e-debs-")
		if err != nil {
			t.Fatal(err)
		}
		debs.dir, debs.files = dir, map[string]string{}
	}
	// One directory per package: apt-get download names the file after the
	// version, which the test does not know in advance.
	dir := filepath.Join(debs.dir, pkg)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	found, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(found) != 1 {
		t.Fatalf("apt-get download %s left %v (%v), want one .deb", pkg, found, err)
	}
	debs.files[pkg] = found[0]
	return found[0]
}

// debianLayer unpacks the named Debian packages with `dpkg-deb -x` into one
// reproducible layer (entries sorted, parents first, mtime 0, owner 0:0),
// with extra entries added over them.
func debianLayer(t *testing.T, pkgs []string, extra ...layerFile) v1.Layer {
	t.Helper()
	root := t.TempDir()
	for _, p := range pkgs {
		if out, err := exec.Command("dpkg-deb", "-x", debianDeb(t, p), root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", p, err, out)
		}
	}
	entries := map[string]layerFile{}
	seen := map[uint64]string{} // inode → first name, for hard links
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := layerFile{name: rel, mode: tarMode(fi.Mode())}
		switch {
		case fi.IsDir():
			f.typ, f.name = tar.TypeDir, rel+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			f.typ = tar.TypeSymlink
			if f.link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			ino := fi.Sys().(*syscall.Stat_t).Ino
			if first, ok := seen[ino]; ok {
				f.typ, f.link = tar.TypeLink, first
				break
			}
			seen[ino] = rel
			if f.body, err = os.ReadFile(p); err != nil {
				return err
			}
		default:
			t.Fatalf("%s: %s has a file type a test layer does not take (%s)", strings.Join(pkgs, " "), rel, fi.Mode().Type())
		}
		entries[rel] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range extra {
		entries[strings.TrimSuffix(f.name, "/")] = f
	}
	// Every entry's parent directories, so the layer unpacks anywhere.
	for name := range entries {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := entries[dir]; !ok {
				entries[dir] = layerFile{name: dir + "/", typ: tar.TypeDir, mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	files := make([]layerFile, 0, len(names))
	for _, name := range names {
		files = append(files, entries[name])
	}
	return makeLayer(t, files...)
}

// tarMode is a file mode as a tar header carries it: permissions with the
// setuid, setgid and sticky bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// debianShellRef is where pushDebianShell puts its image in a test registry.
const debianShellRef = "debian-sh:1"

// pushDebianShell pushes addr/debian-sh:1, a base image made from Debian's
// busybox-static: /bin/busybox with a link for each of its applets (/bin/sh,
// echo, mkdir, cat, …), and /tmp. It is the base for Dockerfile stages that
// RUN a shell command. It returns the image reference.
func pushDebianShell(t *testing.T, addr string) string {
	t.Helper()
	const pkg = "busybox-static"
	// The applet list comes from busybox itself (a static amd64 binary,
	// which this host runs), so the links match the binary.
	unpacked := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", debianDeb(t, pkg), unpacked).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", pkg, err, out)
	}
	list, err := exec.Command(filepath.Join(unpacked, "bin", "busybox"), "--list-full").Output()
	if err != nil {
		t.Fatalf("busybox --list-full: %v", err)
	}
	extra := []layerFile{{name: "tmp/", typ: tar.TypeDir, mode: 0o1777}}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "bin/busybox" {
			extra = append(extra, layerFile{name: applet, typ: tar.TypeSymlink, link: "/bin/busybox"})
		}
	}
	return pushImage(t, addr, debianShellRef, v1.Config{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"/bin/sh"},
	}, debianLayer(t, []string{pkg}, extra...))
}
