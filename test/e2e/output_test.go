package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// helloGo is helloGoContext with a .git directory beside the sources, as
// a user's checkout has.
func helloGo(t *testing.T, parent string) string {
	t.Helper()
	ctx := helloGoContext(t, parent)
	writeFiles(t, ctx, map[string]string{".git/HEAD": "ref: refs/heads/main\n", ".git/config": "[core]\n"})
	return ctx
}

// snapshot is every entry under dir: its path, type, mode and, for a file,
// the SHA-256 of its bytes; for a link, its target.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// tmpSiblings lists the temporary directories of builds of out (".out.tmp-*").
func tmpSiblings(t *testing.T, out string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+filepath.Base(out)+".tmp-") {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestOutputDirectory: `uni build -o DIR` replaces DIR only if it is empty
// or an earlier image layout; anything else is refused, and left exactly
// as it was, build context first (issue 6, finding 1).
func TestOutputDirectory(t *testing.T) {
	testtool.NeedDownload(t, "the default kernel bundle")
	work := t.TempDir()
	ctx := helloGo(t, work)

	refused := func(t *testing.T, dir string, watch string, args ...string) string {
		t.Helper()
		before := snapshot(t, watch)
		msg, status := uni(t, dir, args...)
		if status == 0 {
			t.Fatalf("uni %s succeeded; want a refusal\n%s", strings.Join(args, " "), msg)
		}
		if after := snapshot(t, watch); after != before {
			t.Errorf("uni %s changed %s:\nbefore:\n%s\nafter:\n%s", strings.Join(args, " "), watch, before, after)
		}
		return msg
	}

	t.Run("the context itself", func(t *testing.T) {
		for _, o := range []string{ctx, "."} {
			msg := refused(t, ctx, work, "build", "-o", o, ".")
			if !strings.Contains(msg, "it is "+ctx) {
				t.Errorf("-o %s: the error does not say it is the context %s:\n%s", o, ctx, msg)
			}
		}
	})
	t.Run("a parent of the context", func(t *testing.T) {
		msg := refused(t, ctx, work, "build", ".", "-o", "..")
		if !strings.Contains(msg, "contains") {
			t.Errorf("the error does not say it contains the context:\n%s", msg)
		}
	})
	t.Run("a directory with an unrelated file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		writeFiles(t, dir, map[string]string{"thesis.tex": "years of work"})
		msg := refused(t, ctx, filepath.Dir(dir), "build", ".", "-o", dir)
		if !strings.Contains(msg, dir) || !strings.Contains(msg, `"thesis.tex"`) {
			t.Errorf("the error does not name %s and thesis.tex:\n%s", dir, msg)
		}
	})
	t.Run("an existing regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "out")
		writeFiles(t, filepath.Dir(file), map[string]string{"out": "not a directory"})
		msg := refused(t, ctx, filepath.Dir(file), "build", "-o", file, ".")
		if !strings.Contains(msg, "is a file") {
			t.Errorf("the error does not say it is a file:\n%s", msg)
		}
	})
	t.Run("a symlink to a directory", func(t *testing.T) {
		parent := t.TempDir()
		writeFiles(t, parent, map[string]string{"real/keep.txt": "keep"})
		link := filepath.Join(parent, "out")
		if err := os.Symlink(filepath.Join(parent, "real"), link); err != nil {
			t.Fatal(err)
		}
		msg := refused(t, ctx, parent, "build", "-o", link, ".")
		if !strings.Contains(msg, "symbolic link") {
			t.Errorf("the error does not say it is a link:\n%s", msg)
		}
	})
	t.Run("a previous build is replaced", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		mustUni(t, ctx, "build", "--disk", "-o", out, ".")
		if _, err := os.Stat(filepath.Join(out, "disk.img")); err != nil {
			t.Fatal(err)
		}
		mustUni(t, ctx, "build", ".", "-o", out)
		if got, want := fileList(t, out), "[config.json initrd kernel rootfs.img sbom.spdx.json]"; got != want {
			t.Errorf("after the second build %s holds %s, want %s (replaced, not merged)", out, got, want)
		}
		if left := tmpSiblings(t, out); len(left) > 0 {
			t.Errorf("temporary directories left: %v", left)
		}
	})
	t.Run("a previous build with a file added", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		mustUni(t, ctx, "build", "-o", out, ".")
		writeFiles(t, out, map[string]string{"notes.txt": "mine"})
		msg := refused(t, ctx, filepath.Dir(out), "build", "-o", out, ".")
		if !strings.Contains(msg, `"notes.txt"`) {
			t.Errorf("the error does not name notes.txt:\n%s", msg)
		}
	})
}

// slowBuild is a context whose build takes seconds (a sparse 2 GiB file to
// read and compress), for a signal to arrive in the middle of it.
func slowBuild(t *testing.T) (ctx, out string) {
	t.Helper()
	work := t.TempDir()
	ctx = helloGo(t, work)
	f, err := os.Create(filepath.Join(ctx, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeFiles(t, ctx, map[string]string{"Unifile.slow": "FROM scratch\nCOPY hello /hello\nCOPY big /big\nENTRYPOINT [\"/hello\"]\n"})
	return ctx, filepath.Join(work, "out")
}

// startBuildUntilWriting starts `uni build` of the slow context and returns
// once it is writing the layout (its temporary directory exists).
func startBuildUntilWriting(t *testing.T, ctx, out string) (*exec.Cmd, chan error, *testtool.Buffer) {
	t.Helper()
	cmd := exec.Command(uniBinary(t), "build", "-f", "Unifile.slow", "-o", out, ".")
	cmd.Dir = ctx
	cmd.Env = cacheEnv(t)
	log := &testtool.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for len(tmpSiblings(t, out)) == 0 {
		select {
		case err := <-done:
			t.Fatalf("the build ended (%v) before it wrote anything:\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no temporary directory beside %s after 2 minutes:\n%s", out, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, done, log
}

// TestBuildInterrupted: Ctrl-C in the middle of a build stops it, exits
// 130 and leaves nothing behind; a build killed outright leaves its
// temporary directory, which the next build removes (issue 6, finding 4).
func TestBuildInterrupted(t *testing.T) {
	testtool.NeedDownload(t, "the default kernel bundle")
	testtool.Slow(t, "builds a 2 GiB file")

	t.Run("SIGINT", func(t *testing.T) {
		ctx, out := slowBuild(t)
		cmd, done, log := startBuildUntilWriting(t, ctx, out)
		sent := time.Now()
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("the build did not stop within 30s of SIGINT:\n%s", log.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit %v after SIGINT, want status 130\n%s", err, log.String())
		}
		t.Logf("stopped %s after SIGINT", time.Since(sent).Round(time.Millisecond))
		if left := tmpSiblings(t, out); len(left) > 0 {
			t.Errorf("the interrupted build left %v", left)
		}
		if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the interrupted build made %s (%v)", out, err)
		}
	})

	t.Run("SIGKILL, then the next build cleans up", func(t *testing.T) {
		ctx, out := slowBuild(t)
		cmd, done, _ := startBuildUntilWriting(t, ctx, out)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		stale := tmpSiblings(t, out)
		if len(stale) == 0 {
			t.Fatal("a killed build left no temporary directory: nothing to clean")
		}
		mustUni(t, ctx, "build", "-o", out, ".")
		if left := tmpSiblings(t, out); len(left) > 0 {
			t.Errorf("the next build left %v (stale before it: %v)", left, stale)
		}
		if got, want := fileList(t, out), "[config.json initrd kernel rootfs.img sbom.spdx.json]"; got != want {
			t.Errorf("%s holds %s, want %s", out, got, want)
		}
	})
}
