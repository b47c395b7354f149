package rootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerOf(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
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
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
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
	base := layerOf(t,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/passwd", body: "root:x:0:0\n"},
		tarEntry{name: "etc/hardpasswd", typ: tar.TypeLink, link: "etc/passwd"},
		tarEntry{name: "bin/tool", body: "#tool", mode: 0o4755},
		tarEntry{name: "usr/lib/libx.so.1.2", body: "ELF"},
		tarEntry{name: "usr/lib/libx.so.1", typ: tar.TypeSymlink, link: "libx.so.1.2"},
		tarEntry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		tarEntry{name: "opt/a/one", body: "1"},
		tarEntry{name: "opt/a/two", body: "2"},
		tarEntry{name: "var/junk", body: "junk"},
	)
	top := layerOf(t,
		tarEntry{name: "var/.wh.junk"},
		tarEntry{name: "opt/a/three", body: "3"},
		tarEntry{name: "opt/a/.wh..wh..opq"},
		tarEntry{name: "etc/passwd", body: "root:x:0:0:new\n"},
	)
	cache := t.TempDir()
	im, err := FromImage("test", imageOf(t, base, top), cache)
	if err != nil {
		t.Fatal(err)
	}
	tree := im.Tree
	if _, ok := tree.Get("/var/junk"); ok {
		t.Error("whiteout did not remove /var/junk")
	}
	if _, ok := tree.Get("/opt/a/one"); ok {
		t.Error("opaque dir kept a lower file")
	}
	if e, ok := tree.Get("/opt/a/three"); !ok || readAll(t, e) != "3" {
		t.Error("opaque dir lost a file of its own layer")
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
	// Warm: the cached index gives the same tree without reading the tar.
	im2, err := FromImage("test", imageOf(t, base, top), cache)
	if err != nil {
		t.Fatal(err)
	}
	if im2.Tree.Len() != tree.Len() {
		t.Errorf("warm pull has %d entries, cold had %d", im2.Tree.Len(), tree.Len())
	}
}

func TestHostileLayers(t *testing.T) {
	cases := map[string]tarEntry{
		"dotdot":           {name: "../../evil", body: "x"},
		"inner dotdot":     {name: "a/../../evil", body: "x"},
		"escaping symlink": {name: "a/link", typ: tar.TypeSymlink, link: "../../etc/shadow"},
		"hardlink out":     {name: "a/hl", typ: tar.TypeLink, link: "../outside"},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			cache := t.TempDir()
			_, err := FromImage("hostile", imageOf(t, layerOf(t, e)), cache)
			if !errors.Is(err, ErrEscape) {
				t.Fatalf("got %v, want an escape error", err)
			}
			var le *LayerError
			if !errors.As(err, &le) || le.Entry != e.name {
				t.Errorf("error %v does not name the entry %q", err, e.name)
			}
			if _, err := os.Stat(filepath.Join(cache, "layers")); err == nil {
				ents, _ := os.ReadDir(filepath.Join(cache, "layers"))
				if len(ents) != 0 {
					t.Error("a hostile layer was cached")
				}
			}
		})
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
	f.Fuzz(func(t *testing.T, data []byte) {
		store := &blobStore{dir: t.TempDir(), limit: 1 << 20}
		entries, err := readLayer(bytes.NewReader(data), "fuzz", store)
		if err != nil {
			return
		}
		tree := NewTree()
		if err := apply(tree, entries, store); err != nil {
			return
		}
		tree.Walk(func(e *Entry) error {
			if e.Path != Clean(e.Path) {
				t.Fatalf("entry %q is not clean", e.Path)
			}
			if e.IsSymlink() {
				if err := checkLinkTarget(e.Path, e.Link); err != nil {
					t.Fatalf("accepted %s -> %s: %v", e.Path, e.Link, err)
				}
			}
			return nil
		})
	})
}
