// Package testtool is how tests say what they need from the machine. A
// missing tool skips the test on a developer's machine, and fails it when
// CI=true: CI installs everything (`make deps`), so a skip there would hide
// a part that went untested.
package testtool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may
// be skipped for want of a tool.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Missing skips t, or fails it under CI, saying what is missing and how to
// get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing under CI (make deps installs it): "+format, args...)
	}
	t.Skipf("missing: "+format, args...)
}

// Need returns the path of each named program, or stops the test through
// Missing when one is not on PATH.
func Need(t testing.TB, programs ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(programs))
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			Missing(t, "%s is not on PATH", p)
			return nil
		}
		paths = append(paths, path)
	}
	return paths
}

// NeedFile stops the test through Missing when path does not exist; pkg
// names the Debian package that has it.
func NeedFile(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s (apt-get install %s): %v", path, pkg, err)
	}
}

// NeedVM skips t under -short: -short means no VM boots and no downloads.
// Otherwise it needs QEMU.
func NeedVM(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM; not in -short")
	}
	Need(t, "qemu-system-x86_64")
}

// NeedDownload skips t under -short, which makes no downloads.
func NeedDownload(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("downloads %s; not in -short", what)
	}
}

// Slow skips t under -short for a reason other than VMs and downloads
// (a test that reads gigabytes, say).
func Slow(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s; not in -short", why)
	}
}
