package oci

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
)

// PushImage pushes a container image (the frontend's) as ref, a tag, with
// the credentials, transport rules (plain HTTP only to loopback unless
// WithInsecure) and retries of Push, and returns its manifest digest.
// Blobs the registry has are not sent again.
func PushImage(ctx context.Context, img v1.Image, ref string, opts ...Option) (v1.Hash, error) {
	o := makeOptions(opts)
	r, err := o.parseRef(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	tag, ok := r.(name.Tag)
	if !ok {
		return v1.Hash{}, fmt.Errorf("push %s: give a tag, not a digest: the digest is the image's own", ref)
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(tag, img, o.remoteOptions(ctx)...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	progress.New(o.log).Printf("pushed %s@%s", tag, digest)
	return digest, nil
}
