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

// A directory read through HostFS.WithOrigin reports the fixed origin for
// every entry, by Lstat, ReadDir, Resolve and WalkDir alike, and still reads
// the bytes from the host; HostFS without one is unchanged.
func TestHostFSWithOrigin(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/app"), []byte("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	stage := Origin{Kind: OriginStage, Image: "reg/base:1", ImageDigest: "sha256:aa"}
	fsys := HostFS{Root: root}.WithOrigin(stage)
	if fsys.Root != root {
		t.Fatalf("WithOrigin lost the root: %+v", fsys)
	}
	e, links, err := Resolve(fsys, "/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != "/usr/bin/app" || e.Origin != stage || len(links) != 1 || links[0].Origin != stage {
		t.Errorf("resolved %+v through %+v", e, links)
	}
	if e.HostPath != filepath.Join(root, "usr/bin/app") {
		t.Errorf("HostPath %q: the bytes must still come from the host file", e.HostPath)
	}
	seen := 0
	if err := WalkDir(context.Background(), fsys, "/", func(e *Entry, rel string) error {
		seen++
		if e.Origin != stage {
			t.Errorf("%s: origin %+v", rel, e.Origin)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen != 4 { // bin, usr, usr/bin, usr/bin/app
		t.Errorf("walked %d entries, want 4", seen)
	}
	plain, err := HostFS{Root: root}.Lstat("/usr/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Origin != (Origin{Kind: OriginHost, Path: filepath.Join(root, "usr/bin/app")}) {
		t.Errorf("HostFS without an origin: %+v", plain.Origin)
	}
}

func TestOriginString(t *testing.T) {
	for _, c := range []struct {
		o    Origin
		want string
	}{
		{Origin{Kind: OriginStage, Image: "reg/base:1", ImageDigest: "sha256:aa"}, "stage from reg/base:1@sha256:aa"},
		{Origin{Kind: OriginStage, Image: "reg/base:1"}, "stage from reg/base:1"},
		{Origin{Kind: OriginStage}, "stage"},
		{Origin{Kind: OriginStageAdded}, "stage-added"},
		{Origin{Kind: OriginBaseImage, Image: "a", ImageDigest: "sha256:bb", Layer: "sha256:cc"}, "base-image a@sha256:bb layer sha256:cc"},
		{Origin{}, "unknown"},
	} {
		if got := c.o.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.o, got, c.want)
		}
	}
}
