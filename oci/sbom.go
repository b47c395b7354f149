package oci

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// MaxSBOMBytes bounds an SBOM read from a registry.
const MaxSBOMBytes = 256 << 20

// FetchSBOM returns the sbom.spdx.json attached to what ref names (the
// index a tag of ours names), found through the referrers API or its
// fallback tag. It fails when there is none.
func FetchSBOM(ctx context.Context, ref string, opts ...Option) ([]byte, error) {
	o := makeOptions(opts)
	repo, l, err := findSBOM(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	c, err := o.blobClient(ctx, repo)
	if err != nil {
		return nil, err
	}
	rc, err := getBlob(ctx, c, repo, l.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := copyVerified(&buf, rc, l, spec.SBOMFile); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// findSBOM finds the descriptor of the SBOM blob attached to ref.
func findSBOM(ctx context.Context, ref string, o options) (name.Repository, v1.Descriptor, error) {
	r, err := o.parseRef(ref)
	if err != nil {
		return name.Repository{}, v1.Descriptor{}, err
	}
	ropts := o.remoteOptions(ctx)
	desc, err := remote.Head(r, ropts...)
	if err != nil {
		return name.Repository{}, v1.Descriptor{}, fmt.Errorf("%s: %w", ref, err)
	}
	subject := r.Context().Digest(desc.Digest.String())
	idx, err := remote.Referrers(subject, append(ropts, remote.WithFilter("artifactType", SBOMMediaType))...)
	if err != nil {
		return name.Repository{}, v1.Descriptor{}, fmt.Errorf("%s: referrers: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return name.Repository{}, v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		if d.ArtifactType != SBOMMediaType {
			continue
		}
		m, err := remote.Get(r.Context().Digest(d.Digest.String()), ropts...)
		if err != nil {
			return name.Repository{}, v1.Descriptor{}, fmt.Errorf("%s: SBOM manifest %s: %w", ref, d.Digest, err)
		}
		mf, err := v1.ParseManifest(bytes.NewReader(m.Manifest))
		if err != nil {
			return name.Repository{}, v1.Descriptor{}, err
		}
		for _, l := range mf.Layers {
			if l.MediaType != SBOMMediaType || l.Annotations[AnnotationTitle] != spec.SBOMFile {
				continue
			}
			if err := checkDescriptor(spec.SBOMFile, l, MaxSBOMBytes); err != nil {
				return name.Repository{}, v1.Descriptor{}, err
			}
			return r.Context(), l, nil
		}
	}
	return name.Repository{}, v1.Descriptor{}, fmt.Errorf("%s: no %s attached (no referrer of type %s)", ref, spec.SBOMFile, SBOMMediaType)
}
