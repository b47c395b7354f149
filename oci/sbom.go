package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// MaxSBOMBytes bounds an SBOM read from a registry.
const MaxSBOMBytes = sbom.MaxBytes

// ErrSBOMSubject is wrapped by FetchSBOM's error for an SBOM attached to
// an image whose rootfs.img it does not describe.
var ErrSBOMSubject = errors.New("does not describe the image it is attached to")

// FetchSBOM returns the sbom.spdx.json attached to what ref names (the
// index a tag of ours names), found through the referrers API or its
// fallback tag, checked against its descriptor's digest and, since an SBOM
// is a description of the image and no part of it, against the image: the
// rootfs.img it describes (sbom.Subject) must be the manifest's. It fails
// when there is none.
func FetchSBOM(ctx context.Context, ref string, opts ...Option) ([]byte, error) {
	o := makeOptions(opts)
	res, err := o.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if res.ImageForm {
		return nil, fmt.Errorf("%s is a container image (the image form of docker buildx), which carries no %s referrer: uni pull it, then uni sbom the directory", ref, spec.SBOMFile)
	}
	rootfs := ""
	for _, b := range res.Files {
		if b.Name == spec.RootfsFile {
			rootfs = b.Desc.Digest.String()
		}
	}
	repo, l, err := findSBOM(ctx, res, o)
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
	got, err := sbom.Subject(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", ref, spec.SBOMFile, l.Digest, err)
	}
	if got != rootfs {
		return nil, fmt.Errorf("%s: %s %s %w: it describes rootfs.img %s, the image's is %s", ref, spec.SBOMFile, l.Digest, ErrSBOMSubject, got, rootfs)
	}
	return buf.Bytes(), nil
}

// findSBOM finds the descriptor of the SBOM blob attached to the image res
// resolved: a referrer of the index its tag names (of the manifest, for a
// reference without an index).
func findSBOM(ctx context.Context, res *Resolved, o options) (name.Repository, v1.Descriptor, error) {
	ref := res.Ref.String()
	digest := res.ManifestDigest
	if res.Index != nil {
		digest = res.IndexDigest
	}
	ropts := o.remoteOptions(ctx)
	subject := res.Ref.Context().Digest(digest.String())
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
		// The index is the subject of every platform's SBOM; each names
		// the manifest it describes (one pushed before that annotation
		// existed names none, and Verify checks it all the same).
		if m, ok := d.Annotations[AnnotationDescribes]; ok && m != res.ManifestDigest.String() {
			continue
		}
		m, err := remote.Get(res.Ref.Context().Digest(d.Digest.String()), ropts...)
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
			return res.Ref.Context(), l, nil
		}
	}
	return name.Repository{}, v1.Descriptor{}, fmt.Errorf("%s: no %s attached (no referrer of type %s)", ref, spec.SBOMFile, SBOMMediaType)
}
