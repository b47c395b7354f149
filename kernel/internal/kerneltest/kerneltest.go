// Package kerneltest gives tests the distribution's real cloud kernel
// package, downloaded once into a cache that outlives test runs.
package kerneltest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
)

// CacheDir is os.UserCacheDir()/uni-test/kernel-debs, created if needed.
func CacheDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("user cache dir: %v", err)
	}
	dir := filepath.Join(base, "uni-test", "kernel-debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CloudKernelDeb returns the path of the distribution's current cloud
// kernel .deb, downloading it into CacheDir unless it is there. When the
// download fails (offline) a .deb cached by an earlier run is used. It
// skips the test on hosts without apt-get.
func CloudKernelDeb(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not found: the distribution kernel package can only be downloaded on a Debian-family host")
	}
	dir := CacheDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := distro.DownloadCloudKernel(ctx, dir)
	if err == nil {
		return p
	}
	cached, _ := filepath.Glob(filepath.Join(dir, "linux-image-*-cloud-*.deb"))
	if len(cached) > 0 {
		t.Logf("download failed (%v); using cached %s", err, cached[len(cached)-1])
		return cached[len(cached)-1]
	}
	t.Fatalf("downloading the cloud kernel: %v", err)
	return ""
}
