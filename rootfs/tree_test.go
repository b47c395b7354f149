package rootfs

import (
	"context"
	"errors"
	"io/fs"
	"math/rand"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestCheckPath(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen+1)
	for p, want := range map[string]error{
		"/":                                   nil,
		"/a/b":                                nil,
		"/" + strings.Repeat("n", MaxNameLen): nil,
		"/" + strings.Repeat("d/", MaxDepth-1) + "f": nil,
		"/a\x00b":    ErrInvalidPath,
		"/a/" + long: ErrInvalidPath,
		"/" + strings.Repeat("d/", MaxDepth) + "f":                   ErrTooDeep,
		"/" + strings.Repeat(strings.Repeat("p", 200)+"/", 21) + "f": ErrInvalidPath,
	} {
		err := CheckPath(p)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("CheckPath(%.40q…) = %v, want %v", p, err, want)
		}
		if want != nil && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%v does not wrap ErrInvalidPath", err)
		}
	}
	err := CheckPath("/dir/" + long)
	if !strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), "/dir/") {
		t.Errorf("error %q does not name the path and the long name", err)
	}
	err = CheckPath("/a\x00b")
	if strings.ContainsRune(err.Error(), 0) || !strings.Contains(err.Error(), `"/a\x00b"`) {
		t.Errorf("error %q does not quote the NUL", err)
	}
}

func TestTreeRefusesBadNames(t *testing.T) {
	tr := NewTree()
	for _, e := range []Entry{
		{Path: "/etc/pass\x00wd", Mode: 0o644},
		{Path: "/" + strings.Repeat("x", 300), Mode: 0o644},
		{Path: "/" + strings.Repeat("d/", MaxDepth+1), Mode: fs.ModeDir | 0o755},
		{Path: "/l", Mode: fs.ModeSymlink | 0o777},
		{Path: "/l", Mode: fs.ModeSymlink | 0o777, Link: "a\x00b"},
	} {
		if err := tr.Add(e); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Add(%.40q) = %v, want an invalid path error", e.Path, err)
		}
	}
	if tr.Len() != 1 {
		t.Errorf("refused entries left %d entries behind", tr.Len()-1)
	}
}

// TestTreeIndex checks the child index against the map of paths under
// random adds and removes, and that Walk keeps its order: byte order of the
// paths with "/" sorting first.
func TestTreeIndex(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	comps := []string{"a", "b", "a.b", "a-b", "c"}
	tr := NewTree()
	for i := 0; i < 3000; i++ {
		n := 1 + rng.Intn(4)
		var parts []string
		for j := 0; j < n; j++ {
			parts = append(parts, comps[rng.Intn(len(comps))])
		}
		p := "/" + strings.Join(parts, "/")
		switch rng.Intn(4) {
		case 0:
			tr.Remove(p)
		case 1:
			tr.Add(Entry{Path: p, Mode: 0o644})
		default:
			tr.Add(Entry{Path: p, Mode: fs.ModeDir | 0o755})
		}
	}
	var walked []string
	tr.Walk(func(e *Entry) error {
		walked = append(walked, e.Path)
		return nil
	})
	var keys []string
	for k := range tr.entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return strings.ReplaceAll(keys[i], "/", "\x00") < strings.ReplaceAll(keys[j], "/", "\x00")
	})
	if strings.Join(walked, "\n") != strings.Join(keys, "\n") {
		t.Fatalf("Walk visits %d entries, the tree holds %d, or the order differs", len(walked), len(keys))
	}
	for _, k := range keys {
		var want []string
		for _, c := range keys {
			if c != "/" && parent(c) == k {
				want = append(want, c)
			}
		}
		var got []string
		for _, e := range tr.Children(k) {
			got = append(got, e.Path)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("Children(%s) = %v, want %v", k, got, want)
		}
	}
}

// deepTree returns a tree holding /deep/d/d/…/file, depth levels of d.
func deepTree(t testing.TB, depth int) *Tree {
	tr := NewTree()
	p := "/deep" + strings.Repeat("/d", depth)
	if err := tr.Add(Entry{Path: p + "/file", Mode: 0o644, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestWalkDirDeep(t *testing.T) {
	for name, fsys := range map[string]FS{
		"tree":    deepTree(t, 800),
		"overlay": Overlay{Upper: NewTree(), Lower: deepTree(t, 800)},
		"host":    hostDeep(t, 800),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			n := 0
			var last string
			err := WalkDir(context.Background(), fsys, "/deep", func(e *Entry, rel string) error {
				n++
				last = rel
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != 801 || !strings.HasSuffix(last, "d/d/file") {
				t.Errorf("walked %d entries, last %q", n, last)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("walking 800 levels took %v", d)
			}
		})
	}
	err := WalkDir(context.Background(), hostDeep(t, MaxDepth+10), "/deep", func(*Entry, string) error { return nil })
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("walking %d levels: %v, want ErrTooDeep", MaxDepth+10, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WalkDir(ctx, deepTree(t, 10), "/deep", func(*Entry, string) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled walk: %v", err)
	}
}

// hostDeep makes <tmp>/deep/d/…/file on the host, depth levels of d, and
// returns the HostFS rooted at <tmp>. It creates each level relative to the
// one before, so any depth works whatever PATH_MAX says.
func hostDeep(t testing.TB, depth int) HostFS {
	root := t.TempDir()
	dir, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Mkdir("deep", 0o755); err != nil {
		t.Fatal(err)
	}
	cur, err := dir.OpenRoot("deep")
	dir.Close()
	for i := 0; err == nil && i < depth; i++ {
		if err = cur.Mkdir("d", 0o755); err == nil {
			next, e := cur.OpenRoot("d")
			cur.Close()
			cur, err = next, e
		}
	}
	if err == nil {
		err = cur.WriteFile("file", []byte("x"), 0o644)
		cur.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return HostFS{Root: root} // t.TempDir's cleanup removes it, whatever the depth
}

func TestResolveAt(t *testing.T) {
	tr := NewTree()
	tr.Add(Entry{Path: "/usr/lib/x/libx.so", Mode: 0o644})
	tr.Add(Entry{Path: "/usr/lib/y/link", Mode: fs.ModeSymlink | 0o777, Link: "../x/libx.so"})
	tr.Add(Entry{Path: "/lib", Mode: fs.ModeSymlink | 0o777, Link: "usr/lib"})
	e, links, err := ResolveAt(tr, "/usr/lib/y", "link")
	if err != nil || e.Path != "/usr/lib/x/libx.so" || len(links) != 1 {
		t.Fatalf("ResolveAt = %v %d links %v", e, len(links), err)
	}
	e, links, err = ResolveAt(tr, "/usr/lib/y", "/lib/y/link")
	if err != nil || e.Path != "/usr/lib/x/libx.so" || len(links) != 2 {
		t.Fatalf("absolute ResolveAt = %v %d links %v", e, len(links), err)
	}
	if _, _, err := Resolve(tr, "/usr/lib/x/libx.so/z"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("through a file: %v, want ErrNotDir", err)
	}
	tr.Add(Entry{Path: "/loop", Mode: fs.ModeSymlink | 0o777, Link: "loop"})
	if _, _, err := Resolve(tr, "/loop"); !errors.Is(err, ErrLoop) {
		t.Fatalf("loop: %v, want ErrLoop", err)
	}
}
