package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// An SBOM describes one image: attached to another (here by writing the
// referrer directly, as any client with push rights could), uni sbom REF
// refuses it and uni pull fails and leaves nothing; uni push refuses a
// layout holding the SBOM of another rootfs.img and writes no manifest.
func TestSBOMOfAnotherImage(t *testing.T) {
	ctx := context.Background()
	host := memRegistry(t)
	opts := []Option{WithStore(t.TempDir())}
	src := testLayout(t)
	other := t.TempDir()
	if _, err := layouttest.Write(other, layouttest.Config(), layouttest.Files{Rootfs: bytes.Repeat([]byte("other!\n"), 1000), SBOM: true}); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.ReadFile(filepath.Join(other, spec.SBOMFile))
	if err != nil {
		t.Fatal(err)
	}

	l, err := layout.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/apps/hello:1"
	if _, err := Push(ctx, l, ref, opts...); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, spec.SBOMFile), foreign, 0o644); err != nil {
		t.Fatal(err)
	}

	// uni push: Verify refuses the layout before any manifest is written.
	l2, err := layout.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, l2, host+"/apps/other:1", opts...); !errors.Is(err, layout.ErrMismatch) {
		t.Fatalf("push of a layout with another image's SBOM: %v", err)
	}
	var terr *transport.Error
	if _, err := Resolve(ctx, host+"/apps/other:1"); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("the refused push wrote the tag: %v", err)
	}

	// The foreign SBOM attached to the pushed image as a referrer.
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	o := makeOptions(opts)
	files, err := layoutFiles(ctx, l2, false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewArtifact(l2.Config(), files, false)
	if err != nil {
		t.Fatal(err)
	}
	ropts := o.remoteOptions(ctx)
	p, err := remote.NewPusher(ropts...)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sbomBlob(ctx, l2)
	if err != nil || sb == nil {
		t.Fatalf("the layout's SBOM: %v, %v", sb, err)
	}
	if err := uploadSBOMBlobs(ctx, p, tag.Context(), *sb, progress.New(io.Discard), ropts); err != nil {
		t.Fatal(err)
	}
	if _, err := pushSBOM(ctx, p, tag, a, a.IndexDesc, *sb, progress.New(io.Discard)); err != nil {
		t.Fatal(err)
	}

	if doc, err := FetchSBOM(ctx, ref, opts...); !errors.Is(err, ErrSBOMSubject) || doc != nil {
		t.Errorf("FetchSBOM of another image's SBOM: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "pulled")
	if _, err := Pull(ctx, ref, dst, opts...); !errors.Is(err, layout.ErrMismatch) {
		t.Errorf("pull of an image with another image's SBOM: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused pull left %s: %v", dst, err)
	}
}
