package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// startRegistry runs the distribution registry binary on a free loopback
// port for the test and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	addr, _ := startRegistryWithStorage(t)
	return addr
}

// startRegistryWithStorage is startRegistry that also says where the
// registry keeps its blobs, for tests that look at or damage them.
func startRegistryWithStorage(t *testing.T) (addr, storage string) {
	t.Helper()
	return testregistry.Start(t)
}

// layerFile is one entry of a test layer.
type layerFile struct {
	name, link string
	body       []byte
	typ        byte
	mode       int64
}

func hostFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func makeLayer(t *testing.T, files ...layerFile) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Linkname: f.link, Typeflag: f.typ, Mode: f.mode, ModTime: time.Unix(0, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(f.body)
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pushImage pushes layers with a run config to addr/repo:tag.
func pushImage(t *testing.T, addr, repoTag string, cfg v1.Config, layers ...v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A real image names its platform; BuildKit warns about a base that
	// does not (InvalidBaseImagePlatform).
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// cProgram builds a small dynamically linked C program with gcc.
func cProgram(t *testing.T, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.c": src})
	out := filepath.Join(dir, "app")
	if b, err := exec.Command("gcc", "-O1", "-o", out, filepath.Join(dir, "app.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return hostFile(t, out)
}

const libDir = "/usr/lib/x86_64-linux-gnu"

// baseLayers is a small distro-like base: glibc under a merged /usr with
// /lib and /lib64 links, a shell, docs, a user database, and a directory
// that the second layer deletes with a whiteout.
func baseLayers(t *testing.T, app []byte, withLibc bool) []v1.Layer {
	files := []layerFile{
		{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/lib/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/lib/x86_64-linux-gnu/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", body: hostFile(t, libDir+"/ld-linux-x86-64.so.2"), mode: 0o755},
		{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		{name: "lib64/", typ: tar.TypeDir, mode: 0o755},
		{name: "lib64/ld-linux-x86-64.so.2", typ: tar.TypeSymlink, link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{name: "bin/sh", body: []byte("#!not a real shell\n"), mode: 0o755},
		{name: "usr/share/doc/base/README", body: bytes.Repeat([]byte("docs "), 10000)},
		{name: "etc/passwd", body: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n")},
		{name: "opt/old/big.bin", body: bytes.Repeat([]byte{1}, 1<<20)},
	}
	if withLibc {
		files = append(files, layerFile{name: "usr/lib/x86_64-linux-gnu/libc.so.6", body: hostFile(t, libDir+"/libc.so.6"), mode: 0o755})
	}
	return []v1.Layer{
		makeLayer(t, files...),
		makeLayer(t,
			layerFile{name: "opt/.wh.old"},
			layerFile{name: "usr/bin/app", body: app, mode: 0o755},
			layerFile{name: "usr/bin/app-hardlink", typ: tar.TypeLink, link: "usr/bin/app"},
			layerFile{name: "usr/local/bin/app", typ: tar.TypeSymlink, link: "../../bin/app-hardlink"},
		),
	}
}

const closureApp = `#include <stdio.h>
#include <unistd.h>
int main(void) { printf("closure ok uid=%d\n", (int)getuid()); fflush(stdout); return 7; }
`

// TestRegistryBaseImage: a base image served by a real registry, with
// whiteouts, hard links and symlinks in its layers; the image holds only
// the entrypoint's closure, and it runs.
func TestRegistryBaseImage(t *testing.T) {
	addr := startRegistry(t)
	ref := pushImage(t, addr, "test/base:1", v1.Config{Entrypoint: []string{"app"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}},
		baseLayers(t, cProgram(t, closureApp), true)...)
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{"Unifile": "FROM " + ref + "\nUSER app\nMEMORY 96M\n"})
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")

	listing := unsquashfsList(t, filepath.Join(out, "rootfs.img"))
	for _, want := range []string{"/usr/bin/app-hardlink", "/usr/local/bin/app -> ../../bin/app-hardlink", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib -> usr/lib"} {
		if !bytes.Contains([]byte(listing), []byte(want)) {
			t.Errorf("rootfs lacks %q", want)
		}
	}
	for _, unwanted := range []string{"/bin/sh", "/usr/share/doc", "/opt/old", "big.bin"} {
		if bytes.Contains([]byte(listing), []byte(unwanted)) {
			t.Errorf("rootfs holds %q, which the closure does not need", unwanted)
		}
	}
	testtool.NeedVM(t)
	console, status := uni(t, "", "run", out)
	if status != 7 || !bytes.Contains([]byte(console), []byte("closure ok uid=1234")) {
		t.Fatalf("uni run: exit %d (want 7), console:\n%s", status, console)
	}
}

// unsquashfsList lists a squashfs image with squashfs-tools, the oracle.
func unsquashfsList(t *testing.T, img string) string {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-lls", "-d", "", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	return string(out)
}
