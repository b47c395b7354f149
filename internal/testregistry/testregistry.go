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
	bin := testtool.Need(t, "registry")[0]
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	storage = filepath.Join(dir, "data")
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", storage, addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var logs testtool.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr, storage
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("registry did not start on %s:\n%s", addr, logs.String())
	return "", ""
}

// BlobPath is where the registry in storage keeps the blob with digest
// hex (sha256).
func BlobPath(storage, hex string) string {
	return filepath.Join(storage, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}
