package engine

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/baseimage"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// stagesOf parses text and builds its stages against the context dir.
func stagesOf(t *testing.T, dir, text string) (*unifile.Unifile, *stageRoot, error) {
	t.Helper()
	write(t, dir, map[string]string{"Unifile": text})
	u, err := unifile.Parse(strings.NewReader(text), unifile.Options{Filename: "Unifile"})
	if err != nil {
		t.Fatal(err)
	}
	b := &builder{req: Request{ContextDir: dir, HostRoot: "/", Log: io.Discard}, file: "Unifile", images: map[string]*baseimage.Image{}}
	if b.context, err = openContext(dir, filepath.Join(dir, "Unifile")); err != nil {
		t.Fatal(err)
	}
	root, err := b.stages(context.Background(), u)
	return u, root, err
}

func content(t *testing.T, tree *rootfs.Tree, p string) string {
	t.Helper()
	e, ok := tree.Get(p)
	if !ok {
		t.Fatalf("%s missing", p)
	}
	rc, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestCopySemantics(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"app/main.js":             "main",
		"app/lib/util.js":         "util",
		"app/node_modules/x/i.js": "dep",
		"app/secret.env":          "secret",
		"run.sh":                  "#!/bin/x",
		"data/a.txt":              "a",
		"data/b.txt":              "b",
		".dockerignore":           "**/secret.env\napp/node_modules\n",
	})
	_, root, err := stagesOf(t, dir, `FROM scratch AS build
COPY data /data
FROM scratch
WORKDIR /srv
COPY app ./app/
COPY --chmod=0755 run.sh /usr/local/bin/
COPY --from=build /data/a.txt /etc/a.conf
COPY data/*.txt /glob/
COPY --chown=7:8 run.sh /owned
ENTRYPOINT ["/usr/local/bin/run.sh"]
`)
	if err != nil {
		t.Fatal(err)
	}
	up := root.upper
	if got := content(t, up, "/srv/app/main.js"); got != "main" {
		t.Errorf("main.js = %q", got)
	}
	if got := content(t, up, "/srv/app/lib/util.js"); got != "util" {
		t.Errorf("util.js = %q", got)
	}
	for _, ignored := range []string{"/srv/app/secret.env", "/srv/app/node_modules/x/i.js", "/srv/app/node_modules"} {
		if _, ok := up.Get(ignored); ok {
			t.Errorf("%s copied despite .dockerignore", ignored)
		}
	}
	if e, _ := up.Get("/usr/local/bin/run.sh"); e == nil || e.Mode.Perm() != 0o755 || e.UID != 0 {
		t.Errorf("run.sh: %+v, want mode 0755 owned by root", e)
	}
	if got := content(t, up, "/etc/a.conf"); got != "a" {
		t.Errorf("COPY --from to a file name: %q", got)
	}
	if content(t, up, "/glob/a.txt") != "a" || content(t, up, "/glob/b.txt") != "b" {
		t.Error("glob COPY into a directory")
	}
	if e, _ := up.Get("/owned"); e == nil || e.UID != 7 || e.GID != 8 {
		t.Errorf("--chown: %+v", e)
	}
}

// TestCopyDirectoryOfOneFile: a directory source is copied as a directory
// whatever it holds (one file, or nothing), as BuildKit does; the file is
// never written under the directory's name.
func TestCopyDirectoryOfOneFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"one/greeting.txt": "hi"})
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	_, root, err := stagesOf(t, dir, `FROM scratch
COPY one /app/one
COPY empty /app/empty
ENTRYPOINT ["/x"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, root.upper, "/app/one/greeting.txt"); got != "hi" {
		t.Errorf("greeting.txt = %q", got)
	}
	if e, _ := root.upper.Get("/app/one"); e == nil || !e.IsDir() {
		t.Errorf("/app/one is %+v, want a directory", e)
	}
	if e, _ := root.upper.Get("/app/empty"); e == nil || !e.IsDir() || e.Mode.Perm() != 0o750 {
		t.Errorf("/app/empty is %+v, want a directory with the source's mode 0750", e)
	}
}

func TestCopyRefusesEscapes(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ctx")
	write(t, parent, map[string]string{"outside": "x"})
	write(t, dir, map[string]string{"in/ok": "ok"})
	os.Symlink("../../outside", filepath.Join(dir, "in", "rel-escape"))
	os.Symlink(filepath.Join(parent, "outside"), filepath.Join(dir, "abs-escape"))
	for name, text := range map[string]string{
		"dotdot":         "FROM scratch\nCOPY ../outside /x\nENTRYPOINT [\"/x\"]\n",
		"absolute link":  "FROM scratch\nCOPY abs-escape /x\nENTRYPOINT [\"/x\"]\n",
		"missing source": "FROM scratch\nCOPY nothere /x\nENTRYPOINT [\"/x\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := stagesOf(t, dir, text)
			if err == nil {
				t.Fatal("no error")
			}
			var ue *unifile.Error
			if !errors.As(err, &ue) || ue.Line != 2 {
				t.Errorf("error %v is not located at line 2", err)
			}
		})
	}
}

func TestResolveUser(t *testing.T) {
	tree := rootfs.NewTree()
	tree.Add(rootfs.Entry{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")})
	tree.Add(rootfs.Entry{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nstaff:x:50:\n")})
	for spec, want := range map[string][2]uint32{
		"app": {1000, 1001}, "app:staff": {1000, 50}, "1000": {1000, 1001}, "42": {42, 0}, "42:7": {42, 7}, "": {0, 0},
	} {
		u, g, err := resolveUser(tree, spec)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("%q: %d:%d %v, want %v", spec, u, g, err, want)
		}
	}
	if _, _, err := resolveUser(tree, "nobody"); err == nil || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("unknown user: %v", err)
	}
	if _, _, err := resolveUser(nil, "app"); err == nil {
		t.Error("a name on an empty root resolved")
	}
}

func TestRuntimeDirs(t *testing.T) {
	tree := rootfs.NewTree()
	tree.Add(rootfs.Entry{Path: "/etc/resolv.conf", Mode: fs.ModeSymlink | 0o777, Link: "../run/systemd/resolve/stub-resolv.conf"})
	if err := addRuntimeFiles(tree, "/srv/app"); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(spec.MountPoints, "/srv/app") {
		if e, ok := tree.Get(d); !ok || !e.IsDir() {
			t.Errorf("%s is not a directory", d)
		}
	}
	if e, ok := tree.Get("/etc/resolv.conf"); !ok || !e.IsRegular() {
		t.Errorf("a dangling resolv.conf link was not replaced by a file: %+v", e)
	}
	if e, ok := tree.Get(spec.HostsPath); !ok || !e.IsRegular() {
		t.Errorf("no %s for the init to bind the guest's over: %+v", spec.HostsPath, e)
	}
}

// TestBuildErrorsKeepCauses: a front door can tell why a build failed with
// errors.Is and errors.As, through the Unifile's line.
func TestBuildErrorsKeepCauses(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write(t, outside, map[string]string{"secret": "x"})
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	write(t, dir, map[string]string{"Unifile": "FROM scratch\nCOPY link /app/\nENTRYPOINT [\"/app/x\"]\n"})
	req := Request{ContextDir: dir, OutDir: filepath.Join(t.TempDir(), "out"), CacheDir: t.TempDir()}
	_, err := Build(context.Background(), req)
	var ue *unifile.Error
	if !errors.Is(err, rootfs.ErrEscape) || !errors.As(err, &ue) || ue.Line != 2 {
		t.Errorf("a COPY of a link out of the context: %v; want rootfs.ErrEscape located at line 2", err)
	}

	write(t, dir, map[string]string{"Unifile": "FROM scratch\nCOPY Unifile /app/\nENTRYPOINT [\"/app/x\"]\n"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled build: %v, want context.Canceled", err)
	}
}
