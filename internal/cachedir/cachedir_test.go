package cachedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirFollowsEnv(t *testing.T) {
	d := t.TempDir()
	t.Setenv(Env, d)
	got, err := Dir()
	if err != nil || got != d {
		t.Fatalf("Dir() = %q, %v; want %q", got, err, d)
	}
	sub, err := Sub("", Kernels)
	if err != nil || sub != filepath.Join(d, Kernels) {
		t.Fatalf("Sub = %q, %v", sub, err)
	}
	t.Setenv(Env, "")
	got, err = Dir()
	if err != nil || !strings.HasSuffix(got, string(filepath.Separator)+"uni") {
		t.Fatalf("Dir() without %s = %q, %v", Env, got, err)
	}
}

func TestMkdirPrivate(t *testing.T) {
	d := filepath.Join(t.TempDir(), "a", "b")
	if err := MkdirPrivate(d); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(d)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want 0700", fi.Mode().Perm())
	}
	os.Chmod(d, 0o777)
	if err := MkdirPrivate(d); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("a 0777 cache directory was accepted: %v", err)
	}
}
