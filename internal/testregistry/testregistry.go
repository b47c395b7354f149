// Package testregistry runs the real distribution registry (the `registry`
// binary, `make test` installs it) for a test, on a free loopback port.
package testregistry

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// Start runs a registry until the test ends and returns its host:port
// and the directory where it keeps its blobs (for tests that look at or
// damage them).
func Start(t testing.TB) (addr, storage string) {
	t.Helper()
	r, err := start(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r.Addr, r.Storage
}

// Registry is a running registry that outlives the test that started it:
// tests of one binary share what the first pushed. Stop it from TestMain.
type Registry struct {
	Addr, Storage string
	cmd           *exec.Cmd
	dir           string
}

// StartShared runs a registry in a directory of its own until Stop.
func StartShared(t testing.TB) *Registry {
	t.Helper()
	dir, err := os.MkdirTemp("", "uni-test-registry-")
	if err != nil {
		t.Fatal(err)
	}
	r, err := start(t, dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	r.dir = dir
	return r
}

// Stop kills the registry and removes a shared one's directory.
func (r *Registry) Stop() {
	if r == nil || r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

func start(t testing.TB, dir string) (*Registry, error) {
	bin := testtool.Need(t, "registry")[0]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	storage := filepath.Join(dir, "data")
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", storage, addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var logs testtool.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Registry{Addr: addr, Storage: storage, cmd: cmd}
	for range 100 {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return r, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.Stop()
	return nil, fmt.Errorf("registry did not start on %s:\n%s", addr, logs.String())
}

// BlobPath is where the registry in storage keeps the blob with digest
// hex (sha256).
func BlobPath(storage, hex string) string {
	return filepath.Join(storage, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}
