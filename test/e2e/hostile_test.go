package e2e

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestBadInput: hostile and broken input gets a clear error that names the
// file and line (or the layer entry) and changes nothing: the output
// directory is neither created nor touched.
func TestBadInput(t *testing.T) {
	addr := startRegistry(t)
	app := cProgram(t, closureApp)
	noLibc := pushImage(t, addr, "test/nolibc:1", v1.Config{Entrypoint: []string{"/usr/bin/app"}}, baseLayers(t, app, false)...)
	dotdot := pushImage(t, addr, "test/dotdot:1", v1.Config{}, makeLayer(t, layerFile{name: "../../../tmp/evil", body: []byte("x")}))
	escLink := pushImage(t, addr, "test/esclink:1", v1.Config{}, makeLayer(t, layerFile{name: "etc/evil", typ: tar.TypeSymlink, link: "../../../../root/.ssh"}))

	cases := []struct {
		name     string
		unifile  string
		files    map[string]string
		wantAll  []string
		exitCode int
	}{
		{name: "syntax error", unifile: "FROM scratch\nCOPY a /a\nENV\nENTRYPOINT [\"/a\"]\n", files: map[string]string{"a": "x"}, wantAll: []string{"Unifile:3"}},
		{name: "unknown instruction", unifile: "FROM scratch\nFROBNICATE now\n", wantAll: []string{"Unifile:2", "unknown instruction", "FROBNICATE"}},
		{name: "no entrypoint", unifile: "FROM scratch\nCOPY a /a\n", files: map[string]string{"a": "x"}, wantAll: []string{"Unifile:", "ENTRYPOINT"}},
		{name: "entrypoint missing", unifile: "FROM scratch\nENTRYPOINT [\"/nope\"]\n", wantAll: []string{"Unifile:2", "/nope"}},
		{name: "shell form", unifile: "FROM scratch\nENTRYPOINT node hi.js\n", wantAll: []string{"Unifile:2", "JSON"}},
		{name: "RUN", unifile: "FROM scratch\nRUN make\nENTRYPOINT [\"/a\"]\n", wantAll: []string{"Unifile:2", "RUN", "BuildKit"}},
		{name: "missing library", unifile: "FROM " + noLibc + "\n", wantAll: []string{"Unifile:1", "libc.so.6", "/usr/bin/app"}},
		{name: "layer with ../", unifile: "FROM " + dotdot + "\nENTRYPOINT [\"/x\"]\n", wantAll: []string{"Unifile:1", "../../../tmp/evil", "escapes the root"}},
		{name: "symlink out of the root", unifile: "FROM " + escLink + "\nENTRYPOINT [\"/x\"]\n", wantAll: []string{"Unifile:1", "etc/evil", "escapes the root"}},
		{name: "COPY outside the context", unifile: "FROM scratch\nCOPY ../secret /s\nENTRYPOINT [\"/s\"]\n", wantAll: []string{"Unifile:2", "outside the build context"}},
		{name: "COPY a link out of the context", unifile: "FROM scratch\nCOPY link /s\nENTRYPOINT [\"/s\"]\n", wantAll: []string{"Unifile:2", "outside the build context"}},
		{name: "absurd MEMORY", unifile: "FROM scratch\nMEMORY 900T\nENTRYPOINT [\"/a\"]\n", wantAll: []string{"Unifile:2", "MEMORY", "out of range"}},
		{name: "MEMORY below the kernel's need", unifile: "FROM host\nCOPY app /app\nMEMORY 48M\nENTRYPOINT [\"/app\"]\n", files: map[string]string{"app": string(app)}, wantAll: []string{"Unifile:3", "MEMORY 48 MiB is too small for kernel"}},
		{name: "tiny MEMORY", unifile: "FROM scratch\nMEMORY 1M\nENTRYPOINT [\"/a\"]\n", wantAll: []string{"Unifile:2", "MEMORY"}},
	}
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret": "do not copy"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			ctx := filepath.Join(parent, "ctx")
			writeFiles(t, ctx, map[string]string{"Unifile": c.unifile})
			writeFiles(t, ctx, c.files)
			writeFiles(t, parent, map[string]string{"secret": "do not copy"})
			os.Symlink(filepath.Join(outside, "secret"), filepath.Join(ctx, "link"))
			out := filepath.Join(parent, "out")
			msg, status := uni(t, ctx, "build", "-o", out, ".")
			if status == 0 {
				t.Fatalf("build succeeded; want an error\n%s", msg)
			}
			for _, want := range c.wantAll {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
				t.Errorf("a crash, not an error:\n%s", msg)
			}
			ents, _ := os.ReadDir(parent)
			for _, e := range ents {
				if e.Name() != "ctx" && e.Name() != "secret" {
					t.Errorf("the failed build left %s behind", e.Name())
				}
			}
		})
	}
}

// TestReproducible: two builds of the same inputs give the same bytes in
// every output file, the disk included.
func TestReproducible(t *testing.T) {
	testtool.NeedDownload(t, "the default kernel package (first build)")
	root := repoRoot(t)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	mustUni(t, root, "build", "--disk", "-o", a, "example/hello-node")
	mustUni(t, root, "build", "--disk", "-o", b, "example/hello-node")
	for _, f := range []string{"kernel", "initrd", "rootfs.img", "config.json", "disk.img", "sbom.spdx.json"} {
		x, err1 := os.ReadFile(filepath.Join(a, f))
		y, err2 := os.ReadFile(filepath.Join(b, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", f, err1, err2)
		}
		if string(x) != string(y) {
			t.Errorf("%s differs between two builds", f)
		}
	}
}
