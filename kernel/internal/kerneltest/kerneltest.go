// Package kerneltest gives tests the distribution's real cloud kernel
// package, downloaded once into a cache that outlives test runs.
package kerneltest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
)

// CacheDir is os.UserCacheDir()/uni-test/kernel-debs, created private to
// this user if needed.
func CacheDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("user cache dir: %v", err)
	}
	dir := filepath.Join(base, "uni-test", "kernel-debs")
	// Earlier versions made this directory world-writable for apt's _apt
	// user; it is ours, so take that back.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cachedir.MkdirPrivate(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CloudKernelDeb returns the path of the distribution's current cloud
// kernel .deb, checked against apt's index, downloading it into CacheDir
// unless a matching one is there. When apt cannot say which package is
// current (offline, no lists), a .deb cached by an earlier run is used.
// It needs a download (not in -short) and apt-get.
func CloudKernelDeb(t testing.TB) string {
	t.Helper()
	testtool.NeedDownload(t, "the distribution's cloud kernel package (about 27 MB)")
	testtool.Need(t, "apt-get", "apt-cache")
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
