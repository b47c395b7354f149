package frontendimage

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
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/oci"
)

const testKernel = "127.0.0.1:5000/uniforge/kernel:6.1.0-test@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// StaticBinary builds a small static Go program, as the frontend is built.
func staticBinary(t *testing.T) string {
	t.Helper()
	testtool.Need(t, "go")
	dir := t.TempDir()
	src := "package main\n\nfunc main() { println(\"frontend\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module fe\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "uni-frontend")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func TestParseInfo(t *testing.T) {
	good := `{"defaultKernel": "` + testKernel + `", "version": "0.1.0"}`
	i, err := ParseInfo([]byte(good))
	if err != nil || i.DefaultKernel != testKernel || i.Version != "0.1.0" {
		t.Fatalf("ParseInfo(good) = %+v, %v", i, err)
	}
	for name, bad := range map[string]string{
		"empty":         ``,
		"not-json":      `defaultKernel=x`,
		"unknown-field": `{"defaultKernel": "` + testKernel + `", "version": "1", "extra": 1}`,
		"trailing":      good + `{}`,
		"no-kernel":     `{"version": "1"}`,
		"no-version":    `{"defaultKernel": "` + testKernel + `"}`,
		"tag-only":      `{"defaultKernel": "127.0.0.1:5000/uniforge/kernel:6.1", "version": "1"}`,
		"short-digest":  `{"defaultKernel": "127.0.0.1:5000/uniforge/kernel@sha256:0123", "version": "1"}`,
		"bad-version":   `{"defaultKernel": "` + testKernel + `", "version": "1 2"}`,
		"array":         `[]`,
		"huge":          `{"version": "` + strings.Repeat("x", maxInfoBytes) + `"}`,
	} {
		if i, err := ParseInfo([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %+v", name, i)
		}
	}
	p := filepath.Join(t.TempDir(), "frontend.json")
	os.WriteFile(p, []byte(`{"version": "1"}`), 0o644)
	if _, err := ReadInfo(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("ReadInfo of a bad file: %v (want the file named)", err)
	}
}

// TestBuildPushPull: the frontend image of a static binary, pushed to a
// real registry and read back with go-containerregistry, holds the binary,
// frontend.json and /tmp as specified, with BuildKit's labels; two builds
// give one digest.
func TestBuildPushPull(t *testing.T) {
	bin := staticBinary(t)
	info := Info{DefaultKernel: testKernel, Version: "0.1.0"}
	img, err := Build(bin, info)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := Build(bin, info)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Fatalf("two builds: %s and %s", d1, d2)
	}
	other, err := Build(bin, Info{DefaultKernel: testKernel, Version: "0.2.0"})
	if err != nil {
		t.Fatal(err)
	}
	if d3, _ := other.Digest(); d3 == d1 {
		t.Fatal("another frontend.json gave the same digest")
	}

	addr, _ := testregistry.Start(t)
	ref := addr + "/uniforge/unifile:dev"
	pushed, err := oci.PushImage(context.Background(), img, ref)
	if err != nil {
		t.Fatal(err)
	}
	if pushed != d1 {
		t.Fatalf("pushed %s, built %s", pushed, d1)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != d1 {
		t.Fatalf("pulled %s, pushed %s", d, d1)
	}
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("manifest %+v", m)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/bin/uni-frontend" {
		t.Errorf("config: %s/%s entrypoint %q", cf.OS, cf.Architecture, cf.Config.Entrypoint)
	}
	if cf.Config.Labels["moby.buildkit.frontend.network.none"] != "true" ||
		cf.Config.Labels["moby.buildkit.frontend.caps"] != "moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	binBytes, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		mode int64
		typ  byte
	}
	want := map[string]file{
		"bin/": {0o755, tar.TypeDir}, "bin/uni-frontend": {0o755, tar.TypeReg}, "etc/": {0o755, tar.TypeDir},
		"etc/uni/": {0o755, tar.TypeDir}, "etc/uni/frontend.json": {0o644, tar.TypeReg}, "tmp/": {0o1777, tar.TypeDir},
	}
	tr := tar.NewReader(rc)
	seen := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen++
		w, ok := want[h.Name]
		if !ok || h.Mode != w.mode || h.Typeflag != w.typ || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("entry %s: mode %o type %q owner %d:%d time %s", h.Name, h.Mode, h.Typeflag, h.Uid, h.Gid, h.ModTime)
		}
		data, _ := io.ReadAll(tr)
		switch h.Name {
		case "bin/uni-frontend":
			if !bytes.Equal(data, binBytes) {
				t.Error("/bin/uni-frontend is not the binary")
			}
		case "etc/uni/frontend.json":
			gotInfo, err := ParseInfo(data)
			if err != nil || gotInfo != info {
				t.Errorf("frontend.json %s: %+v, %v", data, gotInfo, err)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d entries, want %d", seen, len(want))
	}
}

// TestBuildRefuses: a dynamically linked program, a non-ELF file and a
// bad Info make no image.
func TestBuildRefuses(t *testing.T) {
	info := Info{DefaultKernel: testKernel, Version: "1"}
	dynamic := testtool.Need(t, "ls")[0]
	if _, err := Build(dynamic, info); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("a dynamic program: %v", err)
	}
	script := filepath.Join(t.TempDir(), "x.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if _, err := Build(script, info); err == nil {
		t.Error("a script was accepted")
	}
	if _, err := Build(script, Info{DefaultKernel: "127.0.0.1:5000/k:1", Version: "1"}); err == nil || !strings.Contains(err.Error(), "defaultKernel") {
		t.Errorf("a kernel without digest: %v", err)
	}
}
