package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// platformLayout writes a layout for arch with an SBOM; rootfs makes its
// blobs its own.
func platformLayout(t *testing.T, arch, rootfs string, epoch int64) *layout.Layout {
	t.Helper()
	dir := t.TempDir()
	cfg := layouttest.Config()
	if arch != "amd64" {
		cfg.Kernel.Arch = arch
	}
	cfg.Build.SourceDateEpoch = epoch
	if _, err := layouttest.Write(dir, cfg, layouttest.Files{Rootfs: bytes.Repeat([]byte(rootfs), 1000), SBOM: true}); err != nil {
		t.Fatal(err)
	}
	l, err := layout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fetchIndex reads the index ref names.
func fetchIndex(t *testing.T, ref string) (v1.IndexManifest, v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(d.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	return idx, d.Digest
}

// TestMultiPlatformIndex: an arm64 layout pushed to the tag of an amd64
// one joins the index beside it; pushing either again changes nothing;
// uni pull --platform takes each with its own SBOM; a new build of one
// platform replaces its entry only. Against the real registry, and oras
// as the oracle of what the index holds.
func TestMultiPlatformIndex(t *testing.T) {
	ctx := context.Background()
	host, _ := testregistry.Start(t)
	ref := host + "/apps/multi:1"
	opts := []Option{WithStore(t.TempDir())}
	amd := platformLayout(t, "amd64", "amd64 rootfs\n", 1700000000)
	arm := platformLayout(t, "arm64", "arm64 rootfs\n", 1700000000)

	p1, err := Push(ctx, amd, ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Push(ctx, arm, ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	idx, digest := fetchIndex(t, ref)
	if digest != p2.Index || p2.Index == p1.Index {
		t.Fatalf("the tag names %s; pushes said %s then %s", digest, p1.Index, p2.Index)
	}
	want := map[string]v1.Hash{"linux/amd64": p1.Manifest, "linux/arm64": p2.Manifest}
	if len(idx.Manifests) != 2 || idx.ArtifactType != ArtifactType {
		t.Fatalf("index after two platforms: %+v", idx)
	}
	for i, d := range idx.Manifests {
		p := d.Platform.String()
		if want[p] != d.Digest || d.ArtifactType != ArtifactType {
			t.Errorf("entry %d: %s %s, want %s", i, p, d.Digest, want[p])
		}
	}
	if idx.Annotations[AnnotationKernelRelease] != "6.1.0-test" {
		t.Errorf("annotations both entries share are gone: %v", idx.Annotations)
	}

	// The same layouts again, in either order: the same index.
	for i, l := range []*layout.Layout{arm, amd} {
		p, err := Push(ctx, l, ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if p.Index != p2.Index || p.Uploaded != 0 {
			t.Errorf("pushing layout %d again: index %s (want %s), %d blobs sent", i, p.Index, p2.Index, p.Uploaded)
		}
	}

	// oras sees both entries.
	if oras := testtool.Need(t, "oras"); len(oras) > 0 {
		out, err := exec.Command(oras[0], "manifest", "fetch", "--plain-http", ref).Output()
		if err != nil {
			t.Fatalf("oras manifest fetch: %v", err)
		}
		var got v1.IndexManifest
		if err := json.Unmarshal(out, &got); err != nil || len(got.Manifests) != 2 ||
			got.Manifests[0].Platform.Architecture != "amd64" || got.Manifests[1].Platform.Architecture != "arm64" {
			t.Errorf("oras manifest fetch: %v\n%s", err, out)
		}
	}

	// Each platform pulls its own files and its own SBOM.
	for _, c := range []struct {
		platform string
		l        *layout.Layout
	}{{"linux/amd64", amd}, {"linux/arm64", arm}} {
		dst := filepath.Join(t.TempDir(), "pulled")
		r, err := Pull(ctx, ref, dst, append(opts, WithPlatform(c.platform))...)
		if err != nil {
			t.Fatalf("pull --platform %s: %v", c.platform, err)
		}
		if r.Manifest != want[c.platform] {
			t.Errorf("pull --platform %s took %s", c.platform, r.Manifest)
		}
		for _, n := range append(layout.Required, spec.SBOMFile) {
			a, _ := os.ReadFile(c.l.Path(n))
			b, _ := os.ReadFile(filepath.Join(dst, n))
			if !bytes.Equal(a, b) {
				t.Errorf("pull --platform %s: %s differs from the pushed one", c.platform, n)
			}
		}
	}
	if _, err := Pull(ctx, ref, filepath.Join(t.TempDir(), "x"), append(opts, WithPlatform("linux/riscv64"))...); err == nil {
		t.Error("pull --platform linux/riscv64 of an amd64+arm64 index passed")
	}

	// A new amd64 build replaces the amd64 entry and keeps arm64's.
	amd2 := platformLayout(t, "amd64", "amd64 rootfs, rebuilt\n", 1700000001)
	p3, err := Push(ctx, amd2, ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ = fetchIndex(t, ref)
	if len(idx.Manifests) != 2 || idx.Manifests[0].Digest != p3.Manifest || idx.Manifests[1].Digest != p2.Manifest {
		t.Errorf("after a new amd64 build: %+v, want amd64 %s and arm64 %s", idx.Manifests, p3.Manifest, p2.Manifest)
	}
	if _, ok := idx.Annotations[AnnotationCreated]; ok {
		t.Errorf("the entries were built at different times, yet the index says created %s", idx.Annotations[AnnotationCreated])
	}
	if sbom, err := FetchSBOM(ctx, ref, append(opts, WithPlatform("linux/arm64"))...); err != nil {
		t.Errorf("arm64's SBOM after the amd64 entry was replaced: %v", err)
	} else if want, _ := os.ReadFile(arm.Path(spec.SBOMFile)); !bytes.Equal(sbom, want) {
		t.Error("arm64's SBOM after the amd64 entry was replaced is another document")
	}
}
