package oci

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// FuzzParseManifest: whatever a registry sends, an accepted manifest names
// only plain, distinct layout file names with bounded sizes, and has every
// required file. Seeds are in testdata/fuzz/FuzzParseManifest.
func FuzzParseManifest(f *testing.F) {
	a, err := NewArtifact(layouttest.Config(), testFiles(), true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a.Manifest)
	f.Add(a.Index)
	const maxFile = 1 << 30
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, files, err := ParseManifest(raw, maxFile)
		if err != nil {
			return
		}
		if m.ArtifactType != ArtifactType && m.Config.MediaType != ConfigMediaType {
			t.Fatalf("accepted artifact type %q", m.ArtifactType)
		}
		seen := map[string]bool{}
		for _, b := range files {
			if err := CheckTitle(b.Name); err != nil {
				t.Fatalf("accepted title %q: %v", b.Name, err)
			}
			if seen[b.Name] {
				t.Fatalf("accepted %q twice", b.Name)
			}
			seen[b.Name] = true
			limit := int64(maxFile)
			if b.Name == spec.ConfigFile {
				limit = layout.MaxConfigBytes
			}
			if b.Desc.Size < 0 || b.Desc.Size > limit {
				t.Fatalf("accepted %s of %d bytes", b.Name, b.Desc.Size)
			}
		}
		for _, n := range layout.Required {
			if !seen[n] {
				t.Fatalf("accepted a manifest without %s", n)
			}
		}
	})
}

// FuzzExtractLayer: whatever a layer of the image form holds, extracting
// it writes nothing but layout files, as regular files, inside the output
// directory. Seeds are in testdata/fuzz/FuzzExtractLayer.
func FuzzExtractLayer(f *testing.F) {
	f.Add(tarBytes(f, tarEntry{name: "kernel", body: []byte("k")}, tarEntry{name: "./config.json", body: []byte("{}")}))
	f.Add(tarBytes(f, tarEntry{name: "../kernel", body: []byte("k")}, tarEntry{name: "etc/initrd", body: []byte("i")}))
	f.Add(tarBytes(f, tarEntry{name: "rootfs.img", typ: tar.TypeSymlink, link: "/etc/passwd"}))
	f.Add(tarBytes(f, tarEntry{name: "kernel", body: []byte("k")}, tarEntry{name: ".wh.kernel"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		tmp := filepath.Join(parent, "out")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		extractLayer(bytes.NewReader(data), tmp, 1<<20)
		ents, err := os.ReadDir(parent)
		if err != nil || len(ents) != 1 {
			t.Fatalf("wrote beside the output: %v", ents)
		}
		out, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out {
			if !imageFormFile(e.Name()) || !e.Type().IsRegular() {
				t.Fatalf("wrote %q (%v)", e.Name(), e.Type())
			}
		}
	})
}

// FuzzKernelBundleLayer: whatever a layer of a kernel bundle image holds,
// extracting it writes nothing but regular files and directories with a
// bundle's names, inside the bundle directory. Seeds are in
// testdata/fuzz/FuzzKernelBundleLayer.
func FuzzKernelBundleLayer(f *testing.F) {
	f.Add(tarBytes(f, tarEntry{name: "kernel", body: []byte("k")}, tarEntry{name: "modules/", typ: tar.TypeDir}, tarEntry{name: "modules/a/b.ko", body: []byte("m")}))
	f.Add(tarBytes(f, tarEntry{name: "./boot/../../x", body: []byte("k")}))
	f.Add(tarBytes(f, tarEntry{name: "boot", typ: tar.TypeSymlink, link: "/"}, tarEntry{name: "boot/x", body: []byte("k")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "bundle")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		x := &bundleExtract{dir: dir}
		x.layer(bytes.NewReader(data))
		ents, err := os.ReadDir(parent)
		if err != nil || len(ents) != 1 {
			t.Fatalf("wrote beside the bundle: %v", ents)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, p)
			top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
			switch {
			case rel == ".":
			case d.IsDir() && bundleTrees[top]:
			case d.Type().IsRegular() && (bundleFiles[rel] || bundleTrees[top] && rel != top):
			default:
				t.Fatalf("wrote %q (%v)", rel, d.Type())
			}
			return nil
		})
	})
}
