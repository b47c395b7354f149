package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// An entry keeps the origin it entered with through a later layer that
// leaves it alone, a hard link, a copy into another tree and an overlay.
func TestOriginFollowsEntries(t *testing.T) {
	store := &BlobStore{Dir: t.TempDir()}
	tree := NewTree()
	l1 := Origin{Kind: OriginBaseImage, Image: "reg/app:1", ImageDigest: "sha256:aa", Layer: "sha256:l1"}
	l2 := Origin{Kind: OriginBaseImage, Image: "reg/app:1", ImageDigest: "sha256:aa", Layer: "sha256:l2"}
	for _, l := range []struct {
		o   Origin
		tar []byte
	}{
		{l1, tarOf(t, tarEntry{name: "bin/app", body: "app"}, tarEntry{name: "etc/conf", body: "v1"})},
		{l2, tarOf(t, tarEntry{name: "etc/conf", body: "v2"}, tarEntry{name: "bin/link", typ: tar.TypeLink, link: "bin/app"})},
	} {
		entries, err := ReadLayer(context.Background(), bytes.NewReader(l.tar), l.o.Layer, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := ApplyLayerFrom(tree, l.o, entries, store); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]Origin{"/bin/app": l1, "/etc/conf": l2, "/bin/link": l2} {
		if e, ok := tree.Get(p); !ok || e.Origin != want {
			t.Errorf("%s: origin %+v, want %+v", p, e.Origin, want)
		}
	}

	dst := NewTree()
	if err := dst.CopyFrom(tree, "/bin/app"); err != nil {
		t.Fatal(err)
	}
	if e, _ := dst.Get("/bin/app"); e.Origin != l1 {
		t.Errorf("CopyFrom lost the origin: %+v", e.Origin)
	}
	upper := NewTree()
	ctxOrigin := Origin{Kind: OriginContext, Path: "conf/app.conf"}
	if err := upper.Add(Entry{Path: "/etc/conf", Mode: 0o644, Data: []byte("mine"), Origin: ctxOrigin}); err != nil {
		t.Fatal(err)
	}
	ov := Overlay{Upper: upper, Lower: tree}
	if e, err := ov.Lstat("/etc/conf"); err != nil || e.Origin != ctxOrigin {
		t.Errorf("overlay upper: %+v %v", e, err)
	}
	if e, err := ov.Lstat("/bin/app"); err != nil || e.Origin != l1 {
		t.Errorf("overlay lower: %+v %v", e, err)
	}
}

// A host file's origin is its path on the build machine.
func TestHostOrigin(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/libx.so"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := HostFS{Root: root}.Lstat("/usr/lib/libx.so")
	if err != nil {
		t.Fatal(err)
	}
	want := Origin{Kind: OriginHost, Path: filepath.Join(root, "usr/lib/libx.so")}
	if e.Origin != want {
		t.Errorf("origin %+v, want %+v", e.Origin, want)
	}
	if got := e.Origin.String(); got != "host "+want.Path {
		t.Errorf("String() = %q", got)
	}
}
