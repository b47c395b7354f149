package image

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const layoutConfig = `{"schemaVersion": 1, "entrypoint": ["/a"]}` + "\n"

// writeTree writes name → content under dir; a name ending in / is a directory.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// listing is every path under dir with its content, to compare before and after.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, rel+"="+string(b))
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+"->"+l)
		default:
			out = append(out, rel+"/")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func wantRefusal(t *testing.T, err error, dir string, wants ...string) {
	t.Helper()
	var oe *OutputError
	if !errors.As(err, &oe) {
		t.Fatalf("got %v, want an *OutputError", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name %s", err, dir)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestPrepareOutputRefuses(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h", "home")
	writeTree(t, home, map[string]string{".profile": "x"})
	t.Setenv("HOME", home)
	root := t.TempDir()
	ctx := filepath.Join(root, "src", "ctx")
	writeTree(t, ctx, map[string]string{"Unifile": "FROM scratch\n", "app": "x"})
	writeTree(t, root, map[string]string{
		"junk/notes.txt":           "mine",
		"afile":                    "data",
		"target/kernel":            "k",
		"target/config.json":       layoutConfig,
		"nocfg/kernel":             "k",
		"badcfg/kernel":            "k",
		"badcfg/config.json":       `{"schemaVersion": 2}`,
		"notjson/config.json":      "\x00\x01binary",
		"subdir/config.json":       layoutConfig,
		"subdir/kernel/":           "",
		"hidden/config.json":       layoutConfig,
		"hidden/.rootfs.img.tmp-1": "partial",
	})
	if err := os.Symlink(filepath.Join(root, "target"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "src"), filepath.Join(root, "srclink")); err != nil {
		t.Fatal(err)
	}
	before := listing(t, root)
	cases := []struct {
		name, dir string
		wants     []string
	}{
		{"the context", ctx, []string{"it is " + ctx}},
		{"the context, relative", filepath.Join(ctx, "..", "ctx"), []string{"it is"}},
		{"the context through a symlinked parent", filepath.Join(root, "srclink", "ctx"), []string{"it is"}},
		{"a parent of the context", filepath.Join(root, "src"), []string{"it contains " + ctx}},
		{"the root", "/", []string{"it is"}},
		{"$HOME", home, []string{"home directory"}},
		{"a parent of $HOME", filepath.Dir(home), []string{"contains your home directory"}},
		{"a foreign file", filepath.Join(root, "junk"), []string{`"notes.txt"`, "not part of an image layout"}},
		{"a regular file", filepath.Join(root, "afile"), []string{"is a file"}},
		{"a symlink to a layout", filepath.Join(root, "link"), []string{"symbolic link"}},
		{"layout names, no config.json", filepath.Join(root, "nocfg"), []string{"no config.json"}},
		{"config.json of another schema", filepath.Join(root, "badcfg"), []string{"schemaVersion 1"}},
		{"config.json not JSON", filepath.Join(root, "notjson"), []string{"schemaVersion 1"}},
		{"a directory named like a layout file", filepath.Join(root, "subdir"), []string{`"kernel"`}},
		{"a partial file", filepath.Join(root, "hidden"), []string{`".rootfs.img.tmp-1"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantRefusal(t, PrepareOutput(c.dir, ctx), c.dir, c.wants...)
		})
	}
	if after := listing(t, root); after != before {
		t.Errorf("the checks changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestPrepareOutputWorkingDirectory(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	wantRefusal(t, PrepareOutput("."), ".", "working directory")
	if err := PrepareOutput("out"); err != nil {
		t.Errorf("a new directory inside the working directory: %v", err)
	}
}

func TestPrepareOutputAccepts(t *testing.T) {
	root := t.TempDir()
	ctx := filepath.Join(root, "ctx")
	writeTree(t, root, map[string]string{
		"ctx/Unifile":            "FROM scratch\n",
		"empty/":                 "",
		"layout/kernel":          "k",
		"layout/initrd":          "i",
		"layout/rootfs.img":      "r",
		"layout/config.json":     layoutConfig,
		"layout/disk.img":        "d",
		"layout/sbom.spdx.json":  "{}",
		"configonly/config.json": layoutConfig,
	})
	for _, dir := range []string{
		filepath.Join(root, "new"),
		filepath.Join(root, "new", "deeper"),
		filepath.Join(ctx, "out"), // inside the context, as `uni build -o out .` does
		filepath.Join(root, "empty"),
		filepath.Join(root, "layout"),
		filepath.Join(root, "configonly"),
	} {
		if err := PrepareOutput(dir, ctx); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

func TestReplaceDir(t *testing.T) {
	newLayout := map[string]string{"kernel": "new k", "config.json": layoutConfig}
	t.Run("an earlier layout is replaced", func(t *testing.T) {
		root := t.TempDir()
		out, tmp := filepath.Join(root, "out"), filepath.Join(root, ".out.tmp-1")
		writeTree(t, out, map[string]string{"kernel": "old k", "disk.img": "old d", "config.json": layoutConfig})
		writeTree(t, tmp, newLayout)
		if err := replaceDir(tmp, out); err != nil {
			t.Fatal(err)
		}
		if got, want := listing(t, root), "./\nout/\nout/config.json="+layoutConfig+"\nout/kernel=new k"; got != want {
			t.Errorf("after replace:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("an empty directory is replaced", func(t *testing.T) {
		root := t.TempDir()
		out, tmp := filepath.Join(root, "out"), filepath.Join(root, ".out.tmp-1")
		writeTree(t, root, map[string]string{"out/": ""})
		writeTree(t, tmp, newLayout)
		if err := replaceDir(tmp, out); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "kernel")); err != nil || string(b) != "new k" {
			t.Errorf("kernel: %q %v", b, err)
		}
	})
	t.Run("a foreign file added after the first check", func(t *testing.T) {
		root := t.TempDir()
		out, tmp := filepath.Join(root, "out"), filepath.Join(root, ".out.tmp-1")
		writeTree(t, out, map[string]string{"kernel": "old k", "config.json": layoutConfig})
		if err := PrepareOutput(out); err != nil {
			t.Fatal(err)
		}
		writeTree(t, out, map[string]string{"thesis.tex": "years of work"})
		writeTree(t, tmp, newLayout)
		before := listing(t, out)
		wantRefusal(t, replaceDir(tmp, out), out, `"thesis.tex"`)
		if after := listing(t, out); after != before {
			t.Errorf("refused, yet out changed:\n%s\nwant:\n%s", after, before)
		}
	})
	t.Run("a file at the output path", func(t *testing.T) {
		root := t.TempDir()
		out, tmp := filepath.Join(root, "out"), filepath.Join(root, ".out.tmp-1")
		writeTree(t, root, map[string]string{"out": "a file"})
		writeTree(t, tmp, newLayout)
		wantRefusal(t, replaceDir(tmp, out), out, "is a file")
		if b, _ := os.ReadFile(out); string(b) != "a file" {
			t.Errorf("the file now holds %q", b)
		}
	})
	t.Run("a layout another build holds", func(t *testing.T) {
		root := t.TempDir()
		out, tmp := filepath.Join(root, "out"), filepath.Join(root, ".out.tmp-1")
		writeTree(t, out, map[string]string{"kernel": "old k", "config.json": layoutConfig})
		writeTree(t, tmp, newLayout)
		f, ok := lockDir(out)
		if !ok {
			t.Fatal("lock")
		}
		defer f.Close()
		wantRefusal(t, replaceDir(tmp, out), out, "another build")
	})
}

func TestStaleTempDirs(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	writeTree(t, root, map[string]string{
		// A build killed while writing: layout files and a partial one.
		".out.tmp-111/kernel":              "k",
		".out.tmp-111/.rootfs.img.tmp-222": "partial",
		// Killed while moving the older layout aside.
		".out.tmp-333.old/kernel":      "k",
		".out.tmp-333.old/config.json": layoutConfig,
		// Killed right after making it.
		".out.tmp-444/": "",
		// Ours by name, but holding something a build never writes.
		".out.tmp-555/kernel":   "k",
		".out.tmp-555/mine.txt": "keep me",
		// Not ours: another output's, or names a build never makes.
		".other.tmp-666/kernel": "k",
		".out.tmp-abc/kernel":   "k",
		".out.tmp-777x/kernel":  "k",
		"out.tmp-888/kernel":    "k",
	})
	// A live build's: locked.
	live := filepath.Join(root, ".out.tmp-999")
	writeTree(t, live, map[string]string{"kernel": "k"})
	f, ok := lockDir(live)
	if !ok {
		t.Fatal("lock")
	}
	defer f.Close()
	// A symbolic link named like ours is not followed.
	target := filepath.Join(t.TempDir(), "elsewhere")
	writeTree(t, target, map[string]string{"kernel": "k"})
	if err := os.Symlink(target, filepath.Join(root, ".out.tmp-1000")); err != nil {
		t.Fatal(err)
	}

	tmp, release, err := beginOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{".out.tmp-111", ".out.tmp-333.old", ".out.tmp-444"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s is still there (%v)", gone, err)
		}
	}
	for _, kept := range []string{".out.tmp-555/mine.txt", ".out.tmp-555/kernel", ".other.tmp-666/kernel", ".out.tmp-abc/kernel", ".out.tmp-777x/kernel", "out.tmp-888/kernel", ".out.tmp-999/kernel", ".out.tmp-1000"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s was removed: %v", kept, err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "kernel")); err != nil {
		t.Errorf("followed a symlink: %v", err)
	}

	// The new temporary directory is locked: another build's cleaning keeps it.
	cleanStale(root, "out")
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("a live build's temporary directory was removed: %v", err)
	}
	release()
	cleanStale(root, "out")
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("released and empty, yet kept: %v", err)
	}
}
