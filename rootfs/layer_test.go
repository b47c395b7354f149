package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

// tarOf returns a layer tar holding entries.
func tarOf(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// applyLayers reads and applies layers, in order, to a new tree.
func applyLayers(t testing.TB, layers ...[]byte) (*Tree, error) {
	t.Helper()
	store := &BlobStore{Dir: t.TempDir()}
	tree := NewTree()
	for i, l := range layers {
		name := string(rune('a' + i))
		entries, err := ReadLayer(context.Background(), bytes.NewReader(l), name, store)
		if err != nil {
			return nil, err
		}
		if err := ApplyLayer(tree, name, entries, store); err != nil {
			return nil, err
		}
	}
	return tree, nil
}

func readAll(t *testing.T, e *Entry) string {
	t.Helper()
	rc, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestLayersWhiteoutsLinks(t *testing.T) {
	base := tarOf(t,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/passwd", body: "root:x:0:0\n"},
		tarEntry{name: "etc/hardpasswd", typ: tar.TypeLink, link: "etc/passwd"},
		tarEntry{name: "bin/tool", body: "#tool", mode: 0o4755},
		tarEntry{name: "usr/lib/libx.so.1.2", body: "ELF"},
		tarEntry{name: "usr/lib/libx.so.1", typ: tar.TypeSymlink, link: "libx.so.1.2"},
		tarEntry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		tarEntry{name: "opt/a/one", body: "1"},
		tarEntry{name: "opt/a/two", body: "2"},
		tarEntry{name: "opt/a/sub/deep", body: "d"},
		tarEntry{name: "var/junk", body: "junk"},
	)
	top := tarOf(t,
		tarEntry{name: "var/.wh.junk"},
		tarEntry{name: "opt/a/three", body: "3"},
		tarEntry{name: "opt/a/sub/new", body: "n"},
		tarEntry{name: "opt/a/.wh..wh..opq"},
		tarEntry{name: "etc/passwd", body: "root:x:0:0:new\n"},
	)
	tree, err := applyLayers(t, base, top)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tree.Get("/var/junk"); ok {
		t.Error("whiteout did not remove /var/junk")
	}
	if _, ok := tree.Get("/opt/a/one"); ok {
		t.Error("opaque dir kept a lower file")
	}
	if _, ok := tree.Get("/opt/a/sub/deep"); ok {
		t.Error("opaque dir kept a lower file below a directory of its own layer")
	}
	for _, p := range []string{"/opt/a/three", "/opt/a/sub/new"} {
		if _, ok := tree.Get(p); !ok {
			t.Errorf("opaque dir lost %s of its own layer", p)
		}
	}
	if got := names(tree.Children("/opt/a")); got != "sub three" {
		t.Errorf("/opt/a holds %q after the opaque whiteout", got)
	}
	if e, _ := tree.Get("/etc/passwd"); readAll(t, e) != "root:x:0:0:new\n" {
		t.Error("upper layer did not replace /etc/passwd")
	}
	if e, ok := tree.Get("/etc/hardpasswd"); !ok || readAll(t, e) != "root:x:0:0\n" {
		t.Error("hard link does not carry the lower content")
	}
	if e, _ := tree.Get("/bin/tool"); e.Mode&os.ModeSetuid == 0 {
		t.Error("setuid bit lost")
	}
	e, links, err := Resolve(tree, "/lib/libx.so.1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != "/usr/lib/libx.so.1.2" || len(links) != 2 {
		t.Errorf("resolved to %s through %d links", e.Path, len(links))
	}
}

func names(es []*Entry) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Path[strings.LastIndexByte(e.Path, '/')+1:])
	}
	return strings.Join(out, " ")
}

func TestHostileLayers(t *testing.T) {
	cases := map[string]struct {
		e    tarEntry
		want error
	}{
		"dotdot":           {tarEntry{name: "../../evil", body: "x"}, ErrEscape},
		"inner dotdot":     {tarEntry{name: "a/../../evil", body: "x"}, ErrEscape},
		"escaping symlink": {tarEntry{name: "a/link", typ: tar.TypeSymlink, link: "../../etc/shadow"}, ErrEscape},
		"hardlink out":     {tarEntry{name: "a/hl", typ: tar.TypeLink, link: "../outside"}, ErrEscape},
		"long name":        {tarEntry{name: "a/" + strings.Repeat("n", 300), body: "x"}, ErrInvalidPath},
		"too deep":         {tarEntry{name: strings.Repeat("d/", MaxDepth) + "f", body: "x"}, ErrTooDeep},
		"long path":        {tarEntry{name: strings.Repeat(strings.Repeat("p", 200)+"/", 21) + "f", body: "x"}, ErrInvalidPath},
		"long link target": {tarEntry{name: "l", typ: tar.TypeSymlink, link: strings.Repeat("t", 4096)}, ErrInvalidPath},
		"file as root":     {tarEntry{name: ".", body: "x"}, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := applyLayers(t, tarOf(t, c.e))
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var le *LayerError
			if !errors.As(err, &le) || le.Entry != c.e.name || le.Layer != "a" {
				t.Errorf("error %v does not name the layer and the entry %q", err, c.e.name)
			}
		})
	}
}

// TestReadLayerCancelled: a cancelled read stops with ctx's error, also in
// the middle of a large file.
func TestReadLayerCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ReadLayer(ctx, bytes.NewReader(tarOf(t, tarEntry{name: "a", body: "x"})), "a", &BlobStore{Dir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// A 1 GiB file served slowly: the read must stop soon after the cancel.
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 30})
		chunk := make([]byte, 64<<10)
		for {
			if _, err := tw.Write(chunk); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = ReadLayer(ctx, pr, "big", &BlobStore{Dir: t.TempDir()})
	pr.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the read went on for %v after the cancel", d)
	}
}

func TestCleanLayerPathKeepsInside(t *testing.T) {
	for _, ok := range []string{"a/b/../c", "./x", "a/./b/", "a/b/../../c"} {
		if _, err := cleanLayerPath(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"..", "../a", "a/../../b", "/../a"} {
		if _, err := cleanLayerPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzCleanLayerPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a/../../b", "./.wh..wh..opq", "/abs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cleanLayerPath(s)
		if err != nil {
			return
		}
		if p != Clean(p) || p[0] != '/' {
			t.Fatalf("%q cleaned to non-canonical %q", s, p)
		}
	})
}

// FuzzCheckPath: whatever CheckPath accepts, a Tree takes and a guest can
// use; whatever it refuses, a Tree refuses.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/a\x00b", "/" + strings.Repeat("n", 256), "/" + strings.Repeat("d/", MaxDepth+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := Clean(s)
		err := CheckPath(p)
		addErr := NewTree().Add(Entry{Path: p, Mode: 0o644})
		if p == "/" {
			return
		}
		if (err == nil) != (addErr == nil) {
			t.Fatalf("CheckPath says %v, Tree.Add says %v", err, addErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("%v does not wrap ErrInvalidPath", err)
			}
			return
		}
		if strings.IndexByte(p, 0) >= 0 || len(p) > MaxPathLen || Depth(p) > MaxDepth {
			t.Fatalf("accepted %q", p)
		}
		for _, c := range strings.Split(p[1:], "/") {
			if len(c) > MaxNameLen {
				t.Fatalf("accepted a %d-byte name", len(c))
			}
		}
	})
}

// FuzzReadLayer feeds arbitrary bytes as a layer tar: it must never panic,
// and whatever it accepts stays inside the root.
func FuzzReadLayer(f *testing.F) {
	seed := func(entries ...tarEntry) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
			if h.Typeflag == 0 {
				h.Typeflag = tar.TypeReg
			} else {
				h.Size = 0
			}
			h.Format = tar.FormatPAX
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte(e.body))
			}
		}
		tw.Close()
		return buf.Bytes()
	}
	f.Add(seed(tarEntry{name: "a/b", body: "x"}, tarEntry{name: "a/.wh.b"}, tarEntry{name: "a/.wh..wh..opq"}))
	f.Add(seed(tarEntry{name: "l", typ: tar.TypeSymlink, link: "../x"}, tarEntry{name: "h", typ: tar.TypeLink, link: "a/b"}))
	f.Add(seed(tarEntry{name: "../../x", body: "x"}))
	f.Add(seed(tarEntry{name: "a/" + strings.Repeat("n", 300), body: "x"}))
	f.Add(seed(tarEntry{name: strings.Repeat("d/", MaxDepth+1) + "f", body: "x"}))
	f.Add(seed(tarEntry{name: "l", typ: tar.TypeSymlink, link: strings.Repeat("t", 5000)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		store := &BlobStore{Dir: t.TempDir(), Limit: 1 << 20}
		entries, err := ReadLayer(context.Background(), bytes.NewReader(data), "fuzz", store)
		if err != nil {
			return
		}
		tree := NewTree()
		if err := ApplyLayer(tree, "fuzz", entries, store); err != nil {
			return
		}
		tree.Walk(func(e *Entry) error {
			if e.Path != Clean(e.Path) {
				t.Fatalf("entry %q is not clean", e.Path)
			}
			if err := CheckPath(e.Path); err != nil {
				t.Fatalf("accepted a bad name: %v", err)
			}
			if e.IsSymlink() {
				if err := checkLayerLink(e.Path, e.Link); err != nil {
					t.Fatalf("accepted %s -> %s: %v", e.Path, e.Link, err)
				}
			}
			return nil
		})
	})
}
