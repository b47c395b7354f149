// Package e2e drives the real uni binary, as a user would: it builds
// Unifiles, boots the images in QEMU and checks what the app inside does.
// `make test` builds bin/uni first and puts it on PATH.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// uniPath is the uni under test: $UNI, else a build of this checkout's
// cmd/uni made once by TestMain, so that a fresh clone's `go test` tests
// the code it holds and not a stale bin/uni.
var uniPath string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if uniPath = os.Getenv("UNI"); uniPath == "" {
		dir, err := os.MkdirTemp("", "uni-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		uniPath = filepath.Join(dir, "uni")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-trimpath", "-o", uniPath, "./cmd/uni")
		cmd.Dir = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building uni for the e2e tests: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	// The daemons and downloads that the tests of this run shared.
	removeDebs()
	stopSharedRegistry()
	if err := testtool.StopDaemons(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// uniBinary is the uni under test.
func uniBinary(t *testing.T) string {
	t.Helper()
	return uniPath
}

func needBoot(t *testing.T) {
	t.Helper()
	testtool.NeedVM(t)
}

// cacheEnv gives uni a cache shared by the tests of one run (kernel bundle,
// image layers), so only the first build pays for the kernel import.
func cacheEnv(t *testing.T) []string {
	dir := os.Getenv("UNI_CACHE_DIR")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(base, "uni")
	}
	return append(os.Environ(), "UNI_CACHE_DIR="+dir)
}

// uni runs the uni binary to completion and returns its combined output
// and exit status.
func uni(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(uniBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = cacheEnv(t)
	out, err := cmd.CombinedOutput()
	status := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("uni %v: %v", args, err)
		}
		status = ee.ExitCode()
	}
	return string(out), status
}

// mustUni runs uni and fails the test unless it exits 0.
func mustUni(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, status := uni(t, dir, args...)
	if status != 0 {
		t.Fatalf("uni %s: exit %d\n%s", strings.Join(args, " "), status, out)
	}
	return out
}

// running is a `uni run` in the background.
type running struct {
	cmd     *exec.Cmd
	console *testtool.Buffer
	done    chan error
}

func startUni(t *testing.T, dir string, args ...string) *running {
	t.Helper()
	cmd := exec.Command(uniBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = cacheEnv(t)
	r := &running{cmd: cmd, console: &testtool.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = r.console, r.console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Signal(os.Interrupt)
			select {
			case <-r.done:
			case <-time.After(20 * time.Second):
				r.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("console of uni %v:\n%s", args, r.console.String())
		}
	})
	return r
}

// httpGet polls url until it answers or the VM stops or time runs out.
func (r *running) httpGet(t *testing.T, url string, within time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	client := &http.Client{Timeout: 3 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body)
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("uni run ended (%v) before %s answered", err, url)
		case <-ctx.Done():
			t.Fatalf("%s did not answer within %s", url, within)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM to uni run and waits for it.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("uni run did not stop within 30s of SIGINT")
		return nil
	}
}

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeFiles writes name → content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
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

// buildStatic builds a Go program (source text) as a static binary at out.
func buildStatic(t *testing.T, src, out string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.go": src, "go.mod": "module app\n\ngo 1.21\n"})
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}

func fileList(t *testing.T, dir string) string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return fmt.Sprint(names)
}

// helloGoContext writes example/hello-go, its static binary built, into a
// new directory hello-go under parent and returns its path.
func helloGoContext(t *testing.T, parent string) string {
	t.Helper()
	dir := filepath.Join(parent, "hello-go")
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "example/hello-go/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	unifile, err := os.ReadFile(filepath.Join(repoRoot(t), "example/hello-go/Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"Unifile": string(unifile)})
	buildStatic(t, string(src), filepath.Join(dir, "hello"))
	return dir
}
