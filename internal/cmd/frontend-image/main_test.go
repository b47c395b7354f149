package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/frontendimage"
	"github.com/uniforge/packer-plugin-unikernel/internal/testbundle"
	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/oci"
)

// TestRun: with the user's default bundle in the cache, the command pushes
// it and the frontend image to a real registry and prints both references;
// the frontend image's frontend.json names the kernel image, which fetches
// back as the same bundle; a second run prints the same digests.
func TestRun(t *testing.T) {
	testtool.Need(t, "go", "grub-mkimage")
	testtool.NeedFile(t, "/usr/lib/grub/i386-pc", "grub-pc-bin")
	testtool.NeedFile(t, "/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")
	cache := t.TempDir()
	t.Setenv("UNI_CACHE_DIR", cache)
	src := t.TempDir()
	testbundle.Dir(t, src)
	ctx := context.Background()
	b, err := kernel.Import(ctx, src, kernel.WithCacheDir(filepath.Join(cache, cachedir.Kernels)), kernel.WithName(kernel.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "uni-frontend")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module fe\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	addr, _ := testregistry.Start(t)
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"-registry", addr, "-binary", bin}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], addr+"/uniforge/kernel:"+testbundle.Release+"@sha256:") ||
		!strings.HasPrefix(lines[1], addr+"/uniforge/unifile:dev@sha256:") {
		t.Fatalf("printed:\n%s", stdout.String())
	}

	// The frontend image names the kernel image it was pushed with.
	r, err := name.ParseReference(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var info frontendimage.Info
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if "/"+h.Name == frontendimage.InfoPath {
			data, _ := io.ReadAll(tr)
			if info, err = frontendimage.ParseInfo(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if info.DefaultKernel != lines[0] {
		t.Fatalf("frontend.json names %q, the kernel was pushed as %q", info.DefaultKernel, lines[0])
	}
	fetched, err := kernel.Resolve(ctx, info.DefaultKernel, kernel.WithCacheDir(t.TempDir()), kernel.WithFetcher(oci.KernelFetcher()), kernel.WithoutDistro())
	if err != nil {
		t.Fatal(err)
	}
	if fetched.Desc.Digest != b.Desc.Digest {
		t.Fatalf("the default kernel fetches as %s, the cache's is %s", fetched.Desc.Digest, b.Desc.Digest)
	}

	var again bytes.Buffer
	if err := run(ctx, []string{"-registry", addr, "-binary", bin}, &again, io.Discard); err != nil {
		t.Fatal(err)
	}
	if again.String() != stdout.String() {
		t.Fatalf("second run:\n%s\nfirst:\n%s", again.String(), stdout.String())
	}
	if err := run(ctx, []string{"-binary", bin}, io.Discard, io.Discard); err == nil {
		t.Error("ran without -registry")
	}
}
