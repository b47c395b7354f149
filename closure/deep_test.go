package closure

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// deepHost makes <root>/deep/d/…/d/file, depth levels of d, creating each
// level below the one before so that any depth works whatever PATH_MAX says.
func deepHost(t testing.TB, depth int) string {
	root := t.TempDir()
	r, err := os.OpenRoot(root)
	if err == nil {
		err = r.Mkdir("deep", 0o755)
	}
	cur := r
	if err == nil {
		cur, err = r.OpenRoot("deep")
		r.Close()
	}
	for i := 0; err == nil && i < depth; i++ {
		if err = cur.Mkdir("d", 0o755); err == nil {
			var next *os.Root
			next, err = cur.OpenRoot("d")
			cur.Close()
			cur = next
		}
	}
	if err == nil {
		err = cur.WriteFile("file", []byte("x"), 0o644)
		cur.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// os.RemoveAll works below each level, whatever the depth.
		if err := os.RemoveAll(filepath.Join(root, "deep")); err != nil {
			t.Log(err)
		}
	})
	return root
}

// TestCopyDeepTree: INCLUDE of an 800-level directory copies it in well
// under a second, from the host, a tree and a stage's overlay; a deeper one
// (here an endless one) fails with a depth error naming the path.
func TestCopyDeepTree(t *testing.T) {
	host := rootfs.HostFS{Root: deepHost(t, 800)}
	tree := rootfs.NewTree()
	if err := Copy(t.Context(), tree, host, []string{"/deep"}); err != nil {
		t.Fatal(err)
	}
	want := "/deep" + strings.Repeat("/d", 800) + "/file"
	for name, fsys := range map[string]rootfs.FS{
		"host":    host,
		"tree":    tree,
		"overlay": rootfs.Overlay{Upper: tree, Lower: rootfs.NewTree()},
		"lower":   rootfs.Overlay{Upper: rootfs.NewTree(), Lower: tree},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			dst := rootfs.NewTree()
			counted := &countingFS{FS: fsys}
			if err := Copy(t.Context(), dst, counted, []string{"/deep"}); err != nil {
				t.Fatal(err)
			}
			// Linear: each of the 802 entries is looked at a few times, not
			// once per level above it (that was 320,000 lookups and more).
			if counted.calls > 4*802 {
				t.Errorf("copying 800 levels made %d lookups", counted.calls)
			}
			// The machine is shared, so the bound is loose; it took 20-50 ms
			// alone, and over two minutes before the walk was linear.
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("copying 800 levels took %v", d)
			}
			if _, ok := dst.Get(want); !ok || dst.Len() != 803 {
				t.Errorf("copy holds %d entries, or lacks the deepest file", dst.Len())
			}
		})
	}
	start := time.Now()
	err := Copy(t.Context(), rootfs.NewTree(), endless{}, []string{"/deep"})
	if !errors.Is(err, rootfs.ErrTooDeep) {
		t.Fatalf("copying an endless tree: %v, want ErrTooDeep", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopping at the depth limit took %v", d)
	}
	if !strings.Contains(err.Error(), "copying /deep: /deep/d/d/") || !strings.Contains(err.Error(), "more than 1024 directory levels deep") {
		t.Errorf("the error does not name the path and the limit: %.200s", err)
	}
}

// endless is an FS of one directory chain with no end: /deep/d/d/d/…
type endless struct{}

func (endless) Lstat(p string) (*rootfs.Entry, error) {
	p = rootfs.Clean(p)
	if p == "/" || p == "/deep" || strings.HasPrefix(p, "/deep/") && strings.Trim(p[len("/deep/"):], "d/") == "" {
		return &rootfs.Entry{Path: p, Mode: os.ModeDir | 0o755}, nil
	}
	return nil, rootfs.ErrNotExist
}

func (e endless) ReadDir(p string) ([]*rootfs.Entry, error) {
	if _, err := e.Lstat(p); err != nil {
		return nil, err
	}
	child := "/deep"
	if p = rootfs.Clean(p); p != "/" {
		child = p + "/d"
	}
	return []*rootfs.Entry{{Path: child, Mode: os.ModeDir | 0o755}}, nil
}

// countingFS counts the calls made to an FS.
type countingFS struct {
	rootfs.FS
	calls int
}

func (c *countingFS) Lstat(p string) (*rootfs.Entry, error) {
	c.calls++
	return c.FS.Lstat(p)
}

func (c *countingFS) ReadDir(p string) ([]*rootfs.Entry, error) {
	c.calls++
	return c.FS.ReadDir(p)
}

func BenchmarkCopyDeep800(b *testing.B) {
	src := rootfs.NewTree()
	if err := Copy(context.Background(), src, rootfs.HostFS{Root: deepHost(b, 800)}, []string{"/deep"}); err != nil {
		b.Fatal(err)
	}
	fsys := rootfs.Overlay{Upper: src, Lower: rootfs.NewTree()}
	for b.Loop() {
		if err := Copy(context.Background(), rootfs.NewTree(), fsys, []string{"/deep"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCopyKeepsLinksInDirs: a link inside a copied directory is kept as a
// link and brings what it leads to (resolved from its own directory); a
// dangling one is kept as it is.
func TestCopyKeepsLinksInDirs(t *testing.T) {
	src := rootfs.NewTree()
	for _, e := range []rootfs.Entry{
		{Path: "/usr/lib/libx.so.1", Mode: 0o644, Data: []byte("x")},
		{Path: "/app/lib/x", Mode: os.ModeSymlink | 0o777, Link: "../../usr/lib/libx.so.1"},
		{Path: "/app/lib/abs", Mode: os.ModeSymlink | 0o777, Link: "/usr/lib"},
		{Path: "/app/lib/gone", Mode: os.ModeSymlink | 0o777, Link: "/nowhere"},
	} {
		if err := src.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	dst := rootfs.NewTree()
	if err := Copy(t.Context(), dst, src, []string{"/app"}); err != nil {
		t.Fatal(err)
	}
	for p, link := range map[string]string{"/app/lib/x": "../../usr/lib/libx.so.1", "/app/lib/abs": "/usr/lib", "/app/lib/gone": "/nowhere"} {
		if e, ok := dst.Get(p); !ok || e.Link != link {
			t.Errorf("%s: %v, want a link to %s", p, e, link)
		}
	}
	if _, ok := dst.Get("/usr/lib/libx.so.1"); !ok {
		t.Error("the link's target was not copied")
	}
	if len(dst.Children("/usr/lib")) != 1 {
		t.Error("a link to a directory brought its contents")
	}
}

func TestCopyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Copy(ctx, rootfs.NewTree(), rootfs.HostFS{Root: deepHost(t, 10)}, []string{"/deep"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	_, err = Resolve(ctx, rootfs.HostFS{Root: "/"}, []string{"/bin/sh"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve: got %v, want context.Canceled", err)
	}
}

// slowFS delays each ReadDir, as a large tree on a slow disk would.
type slowFS struct{ rootfs.FS }

func (s slowFS) ReadDir(p string) ([]*rootfs.Entry, error) {
	time.Sleep(10 * time.Millisecond)
	return s.FS.ReadDir(p)
}

// TestCopyStopsWhenCancelled: a cancel in the middle of a long copy (1024
// slow directories: ten seconds) stops it within a fraction of a second.
func TestCopyStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := Copy(ctx, rootfs.NewTree(), slowFS{endless{}}, []string{"/deep"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the copy went on for %v after a cancel at 100ms", d)
	}
}
