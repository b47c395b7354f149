package testtool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain stops the daemon a failed test may have left running.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := StopDaemons(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// TestBuildkitdSharedAndStopped: Buildkitd starts one daemon with the
// worker the tests rely on (OCI, native snapshotter, no GC), hands the same
// one to every caller, and StopDaemons ends its processes and removes its
// directory; the next Buildkitd starts afresh.
func TestBuildkitdSharedAndStopped(t *testing.T) {
	bk := Buildkitd(t)
	if again := Buildkitd(t); again != bk {
		t.Fatal("a second Buildkitd call started another daemon")
	}
	out, err := bk.Buildctl(t, "", "debug", "workers", "-v")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"worker.executor:\t\toci", "worker.snapshotter:\t\tnative", "BuildKit:\tgithub.com/moby/buildkit v0.34.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug workers lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "GC Policy") {
		t.Errorf("the daemon collects garbage, which may drop the cache a later test expects:\n%s", out)
	}

	dir, pid := bk.dir, bk.cmd.Process.Pid
	if err := StopDaemons(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("buildkitd (pid %d) still there after StopDaemons: %v", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after StopDaemons: %v", dir, err)
	}
	if _, err := bk.Buildctl(t, "", "debug", "workers"); err == nil {
		t.Error("the stopped daemon still answers")
	}

	fresh := Buildkitd(t)
	t.Cleanup(func() {
		if err := StopDaemons(); err != nil {
			t.Error(err)
		}
	})
	if fresh == bk || fresh.Addr() == bk.Addr() {
		t.Fatal("Buildkitd after StopDaemons gave back the stopped daemon")
	}
	if out, err := fresh.Buildctl(t, "", "debug", "workers"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestSweepStale: the directory of a daemon that died is removed, through
// a mount left in it without touching what the mount shows; the directory
// of a live daemon (its lock held) and a young one are kept.
func TestSweepStale(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	old := time.Now().Add(-time.Hour)
	mk := func(name string, lock bool) string {
		dir := filepath.Join(tmp, buildkitdDirPrefix+name)
		if err := os.MkdirAll(filepath.Join(dir, "root"), 0o700); err != nil {
			t.Fatal(err)
		}
		if lock {
			if err := os.WriteFile(filepath.Join(dir, "root", "buildkitd.lock"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	dead, live, nolock, young := mk("dead", true), mk("live", true), mk("nolock", false), mk("young", false)

	held, err := os.Open(filepath.Join(live, "root", "buildkitd.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	// What a daemon killed mid-RUN leaves: a bind mount in its root.
	shown := t.TempDir()
	if err := os.WriteFile(filepath.Join(shown, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	mounted := false
	if os.Geteuid() == 0 {
		target := filepath.Join(dead, "root", "mnt")
		if err := os.Mkdir(target, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(shown, target, "", unix.MS_BIND, ""); err != nil {
			t.Logf("no bind mount here (%v): the sweep is checked without one", err)
		} else {
			mounted = true
			t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
		}
	}

	for _, d := range []string{dead, live, nolock} {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	sweepStale()

	for _, d := range []string{dead, nolock} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s not swept: %v", filepath.Base(d), err)
		}
	}
	for _, d := range []string{live, young} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s swept: %v", filepath.Base(d), err)
		}
	}
	if _, err := os.Stat(filepath.Join(shown, "keep")); err != nil {
		t.Errorf("sweeping deleted through a mount (mounted %v): %v", mounted, err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/plain":           "/plain",
		`/with\040space`:   "/with space",
		`/tab\011and\134b`: "/tab\tand\\b",
		`/not\08octal`:     `/not\08octal`,
		`/short\04`:        `/short\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
