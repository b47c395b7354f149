package oci

import (
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
