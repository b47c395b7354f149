package closure

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

var host = rootfs.HostFS{Root: "/"}

// lddPaths runs ldd (the test's oracle only) and returns the paths it
// lists, the interpreter included.
func lddPaths(t *testing.T, exe string) []string {
	t.Helper()
	testtool.Need(t, "ldd") // the oracle
	out, err := exec.Command("ldd", exe).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", exe, err)
	}
	var paths []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, path.Clean(f[2]))
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths = append(paths, path.Clean(f[0]))
		}
	}
	slices.Sort(paths)
	return paths
}

// libraries returns the shared objects among paths, less the NSS modules
// glibc dlopens at run time (which ldd cannot show).
func libraries(paths []string) []string {
	var out []string
	for _, p := range paths {
		base := path.Base(p)
		if !isSharedObjectName(base) || slices.Contains(glibcNSSLibs(), base) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// materialize writes tree below dir, so that a chroot can run it.
func materialize(t *testing.T, tree *rootfs.Tree, dir string) {
	t.Helper()
	err := tree.Walk(func(e *rootfs.Entry) error {
		dst := filepath.Join(dir, filepath.FromSlash(e.Path))
		switch {
		case e.IsDir():
			return os.MkdirAll(dst, e.Mode.Perm()|0o700)
		case e.IsSymlink():
			return os.Symlink(e.Link, dst)
		case e.IsRegular():
			if e.HostPath != "" && os.Link(e.HostPath, dst) == nil {
				return nil
			}
			src, err := e.Open()
			if err != nil {
				return err
			}
			defer src.Close()
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, e.Mode.Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, src); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runInClosure copies the closure into a fresh directory and runs argv
// there under chroot: the closure is right if the program works with
// nothing else around it.
func runInClosure(t *testing.T, fsys rootfs.FS, res *Result, argv ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "root: running the closure under chroot needs it")
	}
	testtool.Need(t, "chroot", "mount", "umount")
	tree, err := res.Tree(t.Context(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	materialize(t, tree, dir)
	// The guest init mounts /proc before it starts the app; ld.so needs it
	// for the $ORIGIN of the main program (/proc/self/exe).
	procDir := filepath.Join(dir, "proc")
	if err := os.Mkdir(procDir, 0o555); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "proc", "proc", procDir).CombinedOutput(); err != nil {
		testtool.Missing(t, "mounting /proc for the chroot: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", procDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", procDir, err, out)
		}
	})
	cmd := exec.Command("chroot", append([]string{dir}, argv...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v in the closure: %v\n%s", argv, err, out.String())
	}
	return out.String()
}

func TestLsMatchesLdd(t *testing.T) {
	res, err := Resolve(t.Context(), host, []string{"ls"})
	if err != nil {
		t.Fatal(err)
	}
	real, _, err := rootfs.Resolve(host, res.Exe)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := libraries(res.Paths), lddPaths(t, real.Path); !reflect.DeepEqual(got, want) {
		t.Fatalf("libraries of %s:\n got %v\nldd %v", res.Exe, got, want)
	}
	again, err := Resolve(t.Context(), host, []string{"ls"})
	if err != nil || !reflect.DeepEqual(again, res) {
		t.Fatalf("a second Resolve differs: %v", err)
	}
	if out := runInClosure(t, host, res, res.Exe, "/etc"); !strings.Contains(out, "hosts") {
		t.Fatalf("ls /etc in the closure printed %q", out)
	}
}

func TestNodeMatchesLdd(t *testing.T) {
	node := testtool.Need(t, "node")[0]
	res, err := Resolve(t.Context(), host, []string{"node", "-e", "1"}, WithEnv([]string{"PATH=" + filepath.Dir(node)}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := libraries(res.Paths), lddPaths(t, res.Program); !reflect.DeepEqual(got, want) {
		t.Fatalf("libraries of %s:\n got %v\nldd %v", res.Program, got, want)
	}
	if out := runInClosure(t, host, res, res.Exe, "-e", "console.log(6*7)"); strings.TrimSpace(out) != "42" {
		t.Fatalf("node in the closure printed %q", out)
	}
}

func TestPythonStdlib(t *testing.T) {
	matches, _ := filepath.Glob("/usr/bin/python3.*")
	matches = slices.DeleteFunc(matches, func(p string) bool { return !pythonName.MatchString(filepath.Base(p)) })
	if len(matches) == 0 {
		testtool.Missing(t, "/usr/bin/python3.X (apt-get install python3)")
	}
	res, err := Resolve(t.Context(), host, []string{"python3"}, WithEnv([]string{"PATH=/usr/bin"}))
	if err != nil {
		t.Fatal(err)
	}
	version := path.Base(res.Program)
	stdlib := "/usr/lib/" + version
	for _, want := range []string{stdlib + "/os.py", stdlib + "/encodings/__init__.py", stdlib + "/json/decoder.py"} {
		if !slices.Contains(res.Paths, want) {
			t.Errorf("%s missing", want)
		}
	}
	var ssl, libssl bool
	for _, p := range res.Paths {
		if strings.Contains(p, "/test/") || strings.Contains(p, "/__pycache__/") || strings.Contains(p, "/idlelib/") {
			t.Fatalf("%s should be left out", p)
		}
		ssl = ssl || strings.HasPrefix(p, stdlib+"/lib-dynload/_ssl.")
		libssl = libssl || strings.HasPrefix(path.Base(p), "libssl.so")
	}
	if !ssl || !libssl {
		t.Errorf("the _ssl module (%v) or its libssl (%v) is missing", ssl, libssl)
	}
	code := "import ssl, json, sqlite3, encodings.idna; print(json.dumps({'ok': ssl.OPENSSL_VERSION[:7]}))"
	if out := runInClosure(t, host, res, res.Exe, "-c", code); !strings.Contains(out, `{"ok": "OpenSSL"}`) {
		t.Fatalf("python in the closure printed %q", out)
	}
}

func TestStaticGoBinary(t *testing.T) {
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = testtool.Need(t, "go")[0]
	}
	src := t.TempDir()
	root := t.TempDir()
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\nimport (\"fmt\"; \"net\")\nfunc main() { fmt.Println(net.ParseIP(\"::1\")) }\n"), 0o644)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\ngo 1.21\n"), 0o644)
	build := exec.Command(gobin, "build", "-o", filepath.Join(root, "app"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fsys := rootfs.HostFS{Root: root}
	res, err := Resolve(t.Context(), fsys, []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Paths, []string{"/app"}) {
		t.Fatalf("paths %v", res.Paths)
	}
	// Go's net package reads /etc/hosts: kept when the root has it.
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	if res, err = Resolve(t.Context(), fsys, []string{"/app"}); err != nil || !reflect.DeepEqual(res.Paths, []string{"/app", "/etc/hosts"}) {
		t.Fatalf("paths %v, %v", res.Paths, err)
	}
}

// TestOriginRpathAndSonameLinks builds a real library and program with gcc:
// the program, reached through a link on PATH, finds libgreet.so.1 through
// RPATH $ORIGIN/../lib, and libgreet.so.1 is a chain of links.
func TestOriginRpathAndSonameLinks(t *testing.T) {
	testtool.Need(t, "gcc")
	src, root := t.TempDir(), t.TempDir()
	libdir, bindir := filepath.Join(root, "opt/app/lib"), filepath.Join(root, "opt/app/bin")
	os.MkdirAll(libdir, 0o755)
	os.MkdirAll(bindir, 0o755)
	os.WriteFile(filepath.Join(src, "greet.c"), []byte("int greet(void) { return 42; }\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.c"), []byte("int greet(void);\nint main(void) { return greet() == 42 ? 0 : 1; }\n"), 0o644)
	gcc := func(args ...string) {
		t.Helper()
		cmd := exec.Command("gcc", args...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	gcc("-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o", filepath.Join(libdir, "libgreet.so.1.2.3"), "greet.c")
	os.Symlink("libgreet.so.1.2.3", filepath.Join(libdir, "libgreet.so.1.2"))
	os.Symlink("libgreet.so.1.2", filepath.Join(libdir, "libgreet.so.1"))
	gcc("-o", filepath.Join(bindir, "hello"), "main.c", filepath.Join(libdir, "libgreet.so.1.2.3"), "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib")
	if out, err := exec.Command(filepath.Join(bindir, "hello")).CombinedOutput(); err != nil {
		t.Fatalf("the program does not run on the host: %v %s", err, out)
	}
	os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755)
	os.Symlink("/opt/app/bin/hello", filepath.Join(root, "usr/local/bin/hello"))

	// The root: the gcc output plus the host's ld.so and libc.
	tree := rootfs.NewTree()
	if err := tree.AddHostDir(root, "/"); err != nil {
		t.Fatal(err)
	}
	testtool.NeedFile(t, "/lib64/ld-linux-x86-64.so.2", "libc6 (x86-64)")
	testtool.NeedFile(t, "/lib/x86_64-linux-gnu/libc.so.6", "libc6 (x86-64)")
	interp, _, err := rootfs.Resolve(host, "/lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Fatal(err)
	}
	addHostFile(t, tree, "/lib64/ld-linux-x86-64.so.2", interp.HostPath)
	libc, _, err := rootfs.Resolve(host, "/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	addHostFile(t, tree, "/lib/x86_64-linux-gnu/libc.so.6", libc.HostPath)

	res, err := Resolve(t.Context(), tree, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Exe != "/usr/local/bin/hello" || res.Program != "/opt/app/bin/hello" {
		t.Fatalf("exe %s program %s", res.Exe, res.Program)
	}
	want := []string{"/etc/nsswitch.conf", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/opt/app/lib/libgreet.so.1", "/usr/local/bin/hello"}
	if got := append(res.Paths, res.Generated[0].Path); !reflect.DeepEqual(sorted(got), want) {
		t.Fatalf("paths:\n got %v\nwant %v", got, want)
	}
	out, err := res.Tree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/opt/app/lib/libgreet.so.1", "/opt/app/lib/libgreet.so.1.2", "/usr/local/bin/hello"} {
		if e, ok := out.Get(p); !ok || !e.IsSymlink() {
			t.Errorf("%s: want a link in the copy", p)
		}
	}
	runInClosure(t, tree, res, "/usr/local/bin/hello")
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// overlay shows a tree's paths above the host's: a script "copied" into a
// host root.
type overlay struct {
	top  *rootfs.Tree
	base rootfs.FS
}

func (o overlay) Lstat(p string) (*rootfs.Entry, error) {
	if e, err := o.top.Lstat(p); err == nil && (!e.IsDir() || p == "/app") {
		return e, nil
	}
	return o.base.Lstat(p)
}

func (o overlay) ReadDir(dir string) ([]*rootfs.Entry, error) {
	if rootfs.Clean(dir) == "/app" {
		return o.top.ReadDir(dir)
	}
	return o.base.ReadDir(dir)
}

func TestEnvScript(t *testing.T) {
	node := testtool.Need(t, "node")[0]
	testtool.NeedFile(t, "/usr/bin/env", "coreutils")
	top := rootfs.NewTree()
	addFile(t, top, "/app/hello.js", 0o755, []byte("#!/usr/bin/env node\nconsole.log('hi from ' + process.argv.length)\n"))
	addFile(t, top, "/app/bad.js", 0o755, []byte("#!/usr/bin/env nosuchprogram\n"))
	fsys := overlay{top: top, base: host}
	env := WithEnv([]string{"PATH=" + filepath.Dir(node) + ":/usr/bin"})
	res, err := Resolve(t.Context(), fsys, []string{"./hello.js"}, env, WithWorkdir("/app"))
	if err != nil {
		t.Fatal(err)
	}
	nodeReal, _, _ := rootfs.Resolve(host, node)
	if res.Exe != "/app/hello.js" || res.Program != nodeReal.Path {
		t.Fatalf("exe %s program %s", res.Exe, res.Program)
	}
	for _, p := range []string{"/app/hello.js", "/usr/bin/env", node} {
		if !slices.Contains(res.Paths, p) {
			t.Errorf("%s missing from %v", p, res.Paths)
		}
	}
	if out := runInClosure(t, fsys, res, "/app/hello.js"); strings.TrimSpace(out) != "hi from 2" {
		t.Fatalf("the script in the closure printed %q", out)
	}
	_, err = Resolve(t.Context(), fsys, []string{"/app/bad.js"}, env)
	if err == nil || !strings.Contains(err.Error(), `"nosuchprogram" not found on PATH`) || !strings.Contains(err.Error(), "/app/bad.js") {
		t.Fatalf("error %v", err)
	}
}
