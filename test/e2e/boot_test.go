package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestHelloNode builds example/hello-node once and boots it in each boot
// mode with its port forwarded: the app must answer "Hello World".
func TestHelloNode(t *testing.T) {
	needBoot(t)
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, repoRoot(t), "build", "--disk", "-o", out, "example/hello-node")
	for _, f := range []string{"kernel", "initrd", "rootfs.img", "config.json", "disk.img"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatalf("layout lacks %s: %v (has %s)", f, err, fileList(t, out))
		}
	}
	cfg, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil || !strings.Contains(string(cfg), `"memoryBytes": 134217728`) {
		t.Fatalf("config.json does not say MEMORY 128M:\n%s", cfg)
	}
	for _, boot := range []string{"direct", "uefi", "bios"} {
		t.Run(boot, func(t *testing.T) {
			port := freePort(t)
			r := startUni(t, "", "run", "--boot", boot, "-p", fmt.Sprintf("127.0.0.1:%d:8083", port), out)
			body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Minute)
			if body != "Hello World\n" {
				t.Fatalf("answer %q, want %q", body, "Hello World\n")
			}
			if err := r.stop(t); err == nil || err.(*exec.ExitError).ExitCode() != 130 {
				t.Errorf("uni run after SIGINT: %v, want exit status 130", err)
			}
			if !strings.Contains(r.console.String(), "uni: exec /usr/bin/node") {
				t.Errorf("console lacks the exec line:\n%s", r.console.String())
			}
			assertNoQEMU(t, out)
		})
	}
}

// TestHelloGo builds the static Go example FROM scratch and curls it.
func TestHelloGo(t *testing.T) {
	needBoot(t)
	ctx := helloGoContext(t, t.TempDir())
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	port := freePort(t)
	r := startUni(t, "", "run", "-p", fmt.Sprintf("%d:8080", port), out)
	if body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 3*time.Minute); body != "Hello from Go\n" {
		t.Fatalf("answer %q", body)
	}
	r.stop(t)
	assertNoQEMU(t, out)
}

// TestExitStatus: the app's exit status is uni run's, and the app sees its
// argv, env, working directory and user.
func TestExitStatus(t *testing.T) {
	needBoot(t)
	ctx := t.TempDir()
	buildStatic(t, `package main

import (
	"fmt"
	"os"
)

func main() {
	wd, _ := os.Getwd()
	fmt.Printf("args=%q wd=%s uid=%d gid=%d greeting=%s\n", os.Args[1:], wd, os.Getuid(), os.Getgid(), os.Getenv("GREETING"))
	os.Exit(3)
}
`, filepath.Join(ctx, "exit3"))
	writeFiles(t, ctx, map[string]string{"Unifile": `FROM scratch
COPY exit3 /bin/exit3
ENV GREETING=hi
WORKDIR /work
USER 1000:1000
MEMORY 96M
ENTRYPOINT ["/bin/exit3", "one"]
CMD ["two"]
`})
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	console, status := uni(t, "", "run", out)
	if status != 3 {
		t.Fatalf("uni run exited %d, want 3\n%s", status, console)
	}
	want := `args=["one" "two"] wd=/work uid=1000 gid=1000 greeting=hi`
	if !strings.Contains(console, want) {
		t.Errorf("console lacks %q:\n%s", want, console)
	}
}

// TestOneLiner: `uni run hi.js` with nothing but the script, and `uni init`
// writes the Unifile it used, which builds the same image.
func TestOneLiner(t *testing.T) {
	needBoot(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"hi.js": `require('http').createServer((q, s) => s.end('one-liner ok\n')).listen(8090);
`})
	port := freePort(t)
	r := startUni(t, dir, "run", "-p", fmt.Sprintf("%d:8090", port), "hi.js")
	if body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Minute); body != "one-liner ok\n" {
		t.Fatalf("answer %q", body)
	}
	r.stop(t)

	mustUni(t, dir, "init", "hi.js")
	text, err := os.ReadFile(filepath.Join(dir, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM host", "COPY hi.js /app/", "EXPOSE 8090", `"hi.js"]`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("uni init wrote no %q:\n%s", want, text)
		}
	}
	if _, status := uni(t, dir, "init", "hi.js"); status == 0 {
		t.Error("uni init overwrote an existing Unifile without --force")
	}
	mustUni(t, dir, "build", "-o", filepath.Join(t.TempDir(), "image"), ".")
}

// assertNoQEMU fails if a QEMU process still has the image open.
func assertNoQEMU(t *testing.T, layout string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := qemuUsing(layout)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU still running after uni run stopped: %s", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func qemuUsing(layout string) string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "qemu-system") && strings.Contains(cmd, layout) {
			return p + ": " + cmd
		}
	}
	return ""
}

// pythonApp is the Python one-liner's app: port 8000 answers pythonAnswer.
const pythonApp = `import json
from http.server import BaseHTTPRequestHandler, HTTPServer

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"hello": "python"}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("", 8000), Hello).serve_forever()
`

const pythonAnswer = `{"hello": "python"}`

// TestOneLinerPython: `uni run app.py` finds the host's python3 (past a
// version manager's shim) and takes its standard library along.
func TestOneLinerPython(t *testing.T) {
	needBoot(t)
	testtool.Need(t, "python3")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.py": pythonApp})
	port := freePort(t)
	r := startUni(t, dir, "run", "-p", fmt.Sprintf("%d:8000", port), "app.py")
	if body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Minute); body != pythonAnswer {
		t.Fatalf("answer %q", body)
	}
	r.stop(t)
}
