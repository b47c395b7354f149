package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// The BuildKit frontend, end to end: a real buildkitd (runc, native
// snapshotter), a real registry holding the frontend image, the default
// kernel bundle and base images the tests make, and the docker CLI's buildx
// with a remote driver.

// bkEnv is what the frontend tests share: one registry with the frontend
// image, the kernel bundle and the base images in it.
type bkEnv struct {
	bk       *testtool.Buildkit
	registry string
	syntax   string // the frontend image reference
	kernel   string // the default kernel bundle image, pinned by digest
	node     string // a node base image: the host's node and its libraries
	nodeSh   string // the node image over a Debian base with a shell
	shell    string // the Debian base with a shell alone
}

var (
	bkOnce  sync.Once
	bkShare *bkEnv
	bkErr   string
)

// frontendEnv starts (once per test binary) the registry and pushes what
// the frontend tests use; buildkitd is testtool's one daemon.
func frontendEnv(t *testing.T) *bkEnv {
	t.Helper()
	needBoot(t)
	bk := testtool.Buildkitd(t)
	bkOnce.Do(func() {
		// The registry outlives the test that starts it: it is stopped
		// with the test binary.
		sharedRegistry = testregistry.StartShared(t)
		addr := sharedRegistry.Addr
		e := &bkEnv{bk: bk, registry: addr}
		e.syntax, e.kernel = pushFrontendImage(t, addr)
		nodeLayer := hostProgramLayer(t, "/usr/bin/node")
		cfg := v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
		e.node = pushImage(t, addr, "test/node:20", cfg, nodeLayer)
		e.shell = pushDebianShell(t, addr)
		e.nodeSh = appendLayers(t, e.shell, addr+"/test/node-sh:20", nodeLayer)
		bkShare = e
	})
	if bkShare == nil {
		t.Fatal("the frontend test environment failed to start in an earlier test")
	}
	return bkShare
}

// sharedRegistry lives as long as the test binary: the frontend tests
// share what the first one pushed. TestMain stops it.
var sharedRegistry *testregistry.Registry

func stopSharedRegistry() { sharedRegistry.Stop() }

// pushFrontendImage runs `make frontend-image REGISTRY=addr`, as a user
// would, and returns the frontend image's reference and the kernel
// bundle's, both pinned by digest.
func pushFrontendImage(t *testing.T, addr string) (frontend, kernel string) {
	t.Helper()
	cmd := exec.Command("make", "-s", "frontend-image", "REGISTRY="+addr)
	cmd.Dir = repoRoot(t)
	cmd.Env = cacheEnv(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make frontend-image: %v\n%s%s", err, out, stderr.String())
	}
	for _, line := range strings.Fields(string(out)) {
		switch {
		case strings.Contains(line, "/uniforge/unifile:"):
			frontend = line
		case strings.Contains(line, "/uniforge/kernel:"):
			kernel = line
		}
	}
	if frontend == "" || kernel == "" {
		t.Fatalf("make frontend-image printed no frontend or kernel reference:\n%s", out)
	}
	return frontend, kernel
}

// appendLayers pushes to dst the image src with layers on top.
func appendLayers(t *testing.T, src, dst string, layers ...v1.Layer) string {
	t.Helper()
	img, err := crane.Pull(src, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, dst, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	return dst
}

// buildx runs `docker buildx build` with the frontend selected by
// BUILDKIT_SYNTAX, as a user with no `# syntax=` line of ours would.
func (e *bkEnv) buildx(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"build", "--progress=plain", "--build-arg", "BUILDKIT_SYNTAX=" + e.syntax}, args...)
	return e.bk.Buildx(t, dir, full...)
}

func (e *bkEnv) mustBuildx(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := e.buildx(t, dir, args...)
	if err != nil {
		t.Fatalf("buildx: %v\n%s\n--- buildkitd:\n%s", err, out, tail(e.bk.DaemonLog(), 4000))
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// hostProgramLayer is a layer holding a host program and every library
// ldd says it loads, under a merged /usr as Debian lays them out.
func hostProgramLayer(t *testing.T, prog string) v1.Layer {
	t.Helper()
	out, err := exec.Command("ldd", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("ldd %s: %v\n%s", prog, err, out)
	}
	files := map[string]bool{prog: true}
	for _, m := range regexp.MustCompile(`(/[^ \t\n]+) \(0x`).FindAllStringSubmatch(string(out), -1) {
		files[m[1]] = true
	}
	var entries []layerFile
	seen := map[string]bool{}
	dir := func(d string) {
		for p := d; p != "/" && p != "."; p = filepath.Dir(p) {
			if !seen[p] {
				seen[p] = true
				entries = append(entries, layerFile{name: strings.TrimPrefix(p, "/") + "/", typ: tar.TypeDir, mode: 0o755})
			}
		}
	}
	var paths []string
	links := map[string]string{} // a soname link beside the file it names
	for f := range files {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, real)
		if filepath.Base(f) != filepath.Base(real) {
			links[filepath.Join(filepath.Dir(real), filepath.Base(f))] = filepath.Base(real)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		dir(filepath.Dir(p))
		entries = append(entries, layerFile{name: strings.TrimPrefix(p, "/"), body: hostFile(t, p), mode: 0o755})
	}
	for l, target := range links {
		entries = append(entries, layerFile{name: strings.TrimPrefix(l, "/"), typ: tar.TypeSymlink, link: target})
	}
	entries = append(entries,
		layerFile{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		layerFile{name: "lib64", typ: tar.TypeSymlink, link: "usr/lib64"},
		layerFile{name: "usr/lib64/", typ: tar.TypeDir, mode: 0o755},
		layerFile{name: "usr/lib64/ld-linux-x86-64.so.2", typ: tar.TypeSymlink, link: "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		layerFile{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		layerFile{name: "etc/passwd", body: []byte("root:x:0:0:root:/root:/bin/sh\n"), mode: 0o644},
	)
	// Sort so that directories come before what they hold.
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return makeLayer(t, entries...)
}

// sameLayoutBytes compares two image layouts file by file.
func sameLayoutBytes(t *testing.T, a, b string) {
	t.Helper()
	for _, f := range []string{"kernel", "initrd", "rootfs.img", "config.json"} {
		x, errX := os.ReadFile(filepath.Join(a, f))
		y, errY := os.ReadFile(filepath.Join(b, f))
		if errX != nil || errY != nil {
			t.Fatalf("%s: %v / %v", f, errX, errY)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs: %d bytes from uni build, %d from buildx", f, len(x), len(y))
			if f == "config.json" {
				t.Logf("uni build: %s\nbuildx:    %s", x, y)
			}
			if f == "rootfs.img" {
				t.Logf("uni build:\n%s\nbuildx:\n%s", unsquashfsList(t, filepath.Join(a, f)), unsquashfsList(t, filepath.Join(b, f)))
			}
		}
	}
}

// bootAndGet boots a layout (or reference) with the guest's port 8083
// (or the one given) forwarded and returns the app's answer.
func bootAndGet(t *testing.T, what string, guestPort ...int) string {
	t.Helper()
	port, guest := freePort(t), 8083
	if len(guestPort) > 0 {
		guest = guestPort[0]
	}
	r := startUni(t, "", "run", "-p", fmt.Sprintf("127.0.0.1:%d:%d", port, guest), what)
	body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Minute)
	r.stop(t)
	return body
}

// TestBuildxHelloNode: example/hello-node built by buildx from a node base
// image in the registry boots and answers, and is byte for byte what `uni
// build` makes of the same Unifile and base.
func TestBuildxHelloNode(t *testing.T) {
	e := frontendEnv(t)
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "bk")
	e.mustBuildx(t, root, "-f", "example/hello-node/Unifile", "--build-arg", "BASE="+e.node,
		"-o", "type=local,dest="+out, "example/hello-node")
	if body := bootAndGet(t, out); body != "Hello World\n" {
		t.Fatalf("answer %q", body)
	}
	cli := filepath.Join(t.TempDir(), "cli")
	mustUni(t, root, "build", "--build-arg", "BASE="+e.node, "-o", cli, "example/hello-node")
	sameLayoutBytes(t, cli, out)
}

const runStageUnifile = `FROM %[1]s AS gen
RUN mkdir -p /out && echo "made by RUN in an earlier stage" > /out/msg.txt

FROM %[2]s
COPY --from=gen /out/msg.txt /data/msg.txt
COPY server.js /app/
RUN echo "written by the last stage" > /app/run.txt
WORKDIR /app
EXPOSE 8083
ENTRYPOINT ["node", "server.js"]
`

const runStageServer = `const fs = require("fs");
require("http").createServer((req, res) => {
  res.end(fs.readFileSync("/data/msg.txt", "utf8") + fs.readFileSync("/app/run.txt", "utf8"));
}).listen(8083);
`

// TestBuildxRunStages: an earlier stage's RUN writes a file the app
// serves, and a RUN in the last stage writes one it reads: both are in the
// unikernel, the base's shell is not. Then `uni build --builder` sends the
// same build to the daemon, and its layout boots too.
func TestBuildxRunStages(t *testing.T) {
	e := frontendEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Unifile":   fmt.Sprintf(runStageUnifile, e.shell, e.nodeSh),
		"server.js": runStageServer,
	})
	out := filepath.Join(t.TempDir(), "bk")
	e.mustBuildx(t, dir, "-f", "Unifile", "-o", "type=local,dest="+out, ".")
	paths := squashfsPaths(t, filepath.Join(out, "rootfs.img"))
	for _, want := range []string{"/data/msg.txt", "/app/run.txt", "/app/server.js", "/usr/bin/node"} {
		if !paths[want] {
			t.Errorf("rootfs.img lacks %s", want)
		}
	}
	for _, not := range []string{"/bin/sh", "/bin/busybox", "/bin/mkdir", "/out/msg.txt"} {
		if paths[not] {
			t.Errorf("rootfs.img holds %s, which no rule keeps", not)
		}
	}
	want := "made by RUN in an earlier stage\nwritten by the last stage\n"
	if body := bootAndGet(t, out); body != want {
		t.Fatalf("answer %q, want %q", body, want)
	}

	viaCLI := filepath.Join(t.TempDir(), "cli")
	mustUni(t, dir, "build", "--builder", e.bk.Addr(), "--progress", "plain", "-o", viaCLI, ".")
	if body := bootAndGet(t, viaCLI); body != want {
		t.Fatalf("uni build --builder: answer %q, want %q", body, want)
	}
	sameLayoutBytes(t, viaCLI, out)
	if o, status := uni(t, dir, "build", "-o", filepath.Join(t.TempDir(), "x"), "."); status == 0 || !strings.Contains(o, "Unifile:2") || !strings.Contains(o, "--builder") {
		t.Errorf("uni build without --builder on RUN: exit %d\n%s", status, o)
	}
}

// TestBuildxRebuildIsCached: after an edit of the app file only, the base
// image and the kernel bundle come from BuildKit's cache; COPY and the
// assembly step run again.
func TestBuildxRebuildIsCached(t *testing.T) {
	e := frontendEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Unifile": fmt.Sprintf("FROM %s\nCOPY hi.js /app/\nWORKDIR /app\nEXPOSE 8083\nENTRYPOINT [\"node\", \"hi.js\"]\n", e.node),
		"hi.js":   `require("http").createServer((q, s) => s.end("one\n")).listen(8083);` + "\n",
	})
	out := filepath.Join(t.TempDir(), "out")
	e.mustBuildx(t, dir, "-o", "type=local,dest="+out, "-f", "Unifile", ".")
	writeFiles(t, dir, map[string]string{"hi.js": `require("http").createServer((q, s) => s.end("two\n")).listen(8083);` + "\n"})
	progress := e.mustBuildx(t, dir, "-o", "type=local,dest="+out, "-f", "Unifile", ".")
	p := testtool.ParseProgress(progress)
	for _, cached := range []string{"kernel bundle", "verify kernel bundle", "FROM " + e.node} {
		if v, ok := p.Find(cached); !ok || !v.Cached {
			t.Errorf("the rebuild did not take %q from the cache (%+v):\n%s", cached, v, progress)
		}
	}
	for _, rerun := range []string{"COPY hi.js", "assemble unikernel"} {
		if v, ok := p.Find(rerun); !ok || v.Cached || !v.Done {
			t.Errorf("the rebuild did not run %q again (%+v):\n%s", rerun, v, progress)
		}
	}
	if body := bootAndGet(t, out); body != "two\n" {
		t.Fatalf("answer %q after the edit", body)
	}
}

// TestBuildxErrorsNameTheLine: broken Unifiles fail through buildx with
// the error at the right line of the Unifile.
func TestBuildxErrorsNameTheLine(t *testing.T) {
	e := frontendEnv(t)
	for _, tc := range []struct {
		name, unifile, want string
	}{
		{"syntax", "FROM scratch\nCOPY a /a\nENTRYPOINT [\"/a\"\n", "Unifile:3"},
		{"shell form", "FROM scratch\nCOPY a /a\nENTRYPOINT /a --flag\n", "Unifile:3"},
		{"from host", "FROM scratch AS x\nFROM host\nENTRYPOINT [\"/a\"]\n", "Unifile:2"},
		{"missing library", "FROM scratch\nCOPY app /app\nCOPY a /a\nENTRYPOINT [\"/app\"]\n", "Unifile:4"},
		{"memory too small", "FROM scratch\nCOPY static /app\nMEMORY 16M\nENTRYPOINT [\"/app\"]\n", "Unifile:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"Unifile": tc.unifile, "a": "x"})
			if err := os.WriteFile(filepath.Join(dir, "app"), cProgram(t, closureApp), 0o755); err != nil {
				t.Fatal(err)
			}
			buildStatic(t, "package main\n\nfunc main() {}\n", filepath.Join(dir, "static"))
			out, err := e.buildx(t, dir, "-f", "Unifile", "-o", "type=local,dest="+filepath.Join(dir, "out"), ".")
			if err == nil {
				t.Fatalf("buildx built a broken Unifile:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("the error does not point at %s:\n%s", tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "out", "config.json")); err == nil {
				t.Error("a failed build wrote a layout")
			}
		})
	}
}

// TestBuildxPushAndTar: `-t REF --push` gives an image that `uni pull`
// and `uni run REF` take, and `-o type=tar` a tar of the layout.
func TestBuildxPushAndTar(t *testing.T) {
	e := frontendEnv(t)
	dir := helloGoContext(t, t.TempDir())
	ref := e.registry + "/apps/hello-go:bk"
	e.mustBuildx(t, dir, "-f", "Unifile", "-t", ref, "--push", ".")
	pulled := filepath.Join(t.TempDir(), "pulled")
	mustUni(t, "", "pull", ref, "-o", pulled)
	local := filepath.Join(t.TempDir(), "local")
	e.mustBuildx(t, dir, "-f", "Unifile", "-o", "type=local,dest="+local, ".")
	sameLayoutBytes(t, local, pulled)
	if body := bootAndGet(t, ref, 8080); body != "Hello from Go\n" {
		t.Errorf("uni run %s answered %q", ref, body)
	}

	tarPath := filepath.Join(t.TempDir(), "layout.tar")
	e.mustBuildx(t, dir, "-f", "Unifile", "-o", "type=tar,dest="+tarPath, ".")
	names := tarNames(t, tarPath)
	for _, want := range []string{"kernel", "initrd", "rootfs.img", "config.json"} {
		if !names[want] {
			t.Errorf("the tar output lacks %s: %v", want, names)
		}
	}
}

// squashfsPaths is the set of paths a squashfs image holds.
func squashfsPaths(t *testing.T, img string) map[string]bool {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-l", "-d", "", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	paths := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "/") {
			paths[line] = true
		}
	}
	if len(paths) == 0 {
		t.Fatalf("unsquashfs listed nothing in %s:\n%s", img, out)
	}
	return paths
}

// TestBuildxKernelRef: KERNEL names a bundle image by tag; buildx mounts
// it and uni build fetches it from the registry, and the two give the
// same bytes, with the reference recorded as the kernel's name.
func TestBuildxKernelRef(t *testing.T) {
	e := frontendEnv(t)
	ref, _, _ := strings.Cut(e.kernel, "@")
	dir := helloGoContext(t, t.TempDir())
	src, err := os.ReadFile(filepath.Join(dir, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"Unifile": strings.Replace(string(src), "FROM scratch\n", "FROM scratch\nKERNEL "+ref+"\n", 1)})
	out := filepath.Join(t.TempDir(), "bk")
	e.mustBuildx(t, dir, "-f", "Unifile", "-o", "type=local,dest="+out, ".")
	cli := filepath.Join(t.TempDir(), "cli")
	mustUni(t, dir, "build", "-o", cli, ".")
	sameLayoutBytes(t, cli, out)
	cfg, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil || !strings.Contains(string(cfg), `"name": "`+ref+`"`) {
		t.Errorf("config.json does not name the kernel %s:\n%s", ref, cfg)
	}
}

func tarNames(t *testing.T, p string) map[string]bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[strings.TrimPrefix(h.Name, "./")] = true
	}
	return names
}

// TestBuildxCheck: buildx's --check and --call=targets ask the frontend
// about a Unifile without building it; its unikernel keywords are no
// unknown instructions to them.
func TestBuildxCheck(t *testing.T) {
	e := frontendEnv(t)
	dir := helloGoContext(t, t.TempDir())
	out := e.mustBuildx(t, dir, "--check", "-f", "Unifile", ".")
	if !strings.Contains(out, "no warnings found") {
		t.Errorf("--check:\n%s", out)
	}
	writeFiles(t, dir, map[string]string{"Unifile": "FROM scratch AS build\nCOPY hello /hello\nFROM build AS app\nKERNEL linux\nMEMORY 96M\nENTRYPOINT [\"/hello\"]\n"})
	out = e.mustBuildx(t, dir, "--call=targets", "-f", "Unifile", ".")
	if !strings.Contains(out, "build") || !strings.Contains(out, "app") {
		t.Errorf("--call=targets:\n%s", out)
	}
}
