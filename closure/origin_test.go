package closure

import (
	"debug/elf"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// The closure's tree keeps each file's origin (here, the base image layer
// it came from) and marks what it generates.
func TestClosureKeepsOrigins(t *testing.T) {
	app := arm64(elf.ET_DYN)
	app.needed = []string{"libfoo.so.1", "libc.so.6"}
	src := aarch64Root(t, app)
	origins := map[string]rootfs.Origin{}
	src.Walk(func(e *rootfs.Entry) error {
		if !e.IsDir() {
			e.Origin = rootfs.Origin{Kind: rootfs.OriginBaseImage, Image: "reg/arm:1", ImageDigest: "sha256:aa", Layer: "sha256:" + e.Path}
			origins[e.Path] = e.Origin
		}
		return nil
	})
	res, err := Resolve(t.Context(), src, []string{"/app/prog"})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := res.Tree(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	tree.Walk(func(e *rootfs.Entry) error {
		if e.IsDir() {
			return nil
		}
		want, ok := origins[e.Path]
		if !ok {
			want = rootfs.Generated // nsswitch.conf
		}
		if e.Origin != want {
			t.Errorf("%s: origin %+v, want %+v", e.Path, e.Origin, want)
		}
		checked++
		return nil
	})
	// prog, ld.so, libc, libfoo.so.1.0.0 and its two links, nsswitch.conf
	if checked != 7 {
		t.Errorf("checked %d entries, want 7", checked)
	}
}
