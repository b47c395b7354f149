// Package baseimage pulls the base images a stage starts FROM (OCI or
// Docker images in a registry) and turns them into a rootfs.Tree. It is the
// only package that talks to registries; rootfs keeps the tree model and
// the layer reader, so the writers of the image layout link none of this.
//
// ("Image" is overloaded in uni: this package means a base image in a
// registry; package image writes uni's image layout, and image/disk writes
// disk.img.)
package baseimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Image is a base root made from an OCI or Docker image.
type Image struct {
	Ref    string    // the reference as written
	Digest string    // manifest digest, sha256:…
	Config v1.Config // the image's run config (Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts)
	Tree   *rootfs.Tree
}

type options struct {
	cacheDir string
	platform v1.Platform
	keychain authn.Keychain
	remote   []remote.Option
}

// Option configures Pull and FromImage.
type Option func(*options)

// WithCacheDir sets the cache root under which validated layers (layers/)
// and file bodies (blobs/) are kept (default: cachedir.Dir()).
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithPlatform picks the image of an index (default linux/<this machine's arch>).
func WithPlatform(p v1.Platform) Option { return func(o *options) { o.platform = p } }

// WithKeychain sets where registry credentials come from (default: the
// user's docker config, as `docker login` writes it).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithRemoteOptions passes options through to go-containerregistry.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(o *options) { o.remote = append(o.remote, opts...) }
}

func newOptions(opts []Option) (options, error) {
	o := options{
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		keychain: authn.DefaultKeychain,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cacheDir == "" {
		d, err := cachedir.Dir()
		if err != nil {
			return o, err
		}
		o.cacheDir = d
	}
	return o, nil
}

// Pull fetches ref from its registry and applies its layers, in order, to
// a new Tree. Layers are validated once (no entry may climb out of the
// root, no symlink may point above it, no name the guest could not use)
// and cached by diff id, so a second pull reads only the manifest. ctx
// being done stops it; the error then wraps ctx's.
func Pull(ctx context.Context, ref string, opts ...Option) (*Image, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	ropts := append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithPlatform(o.platform),
	}, o.remote...)
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, withCtx(ctx, err))
	}
	return fromImage(ctx, ref, img, o)
}

// FromImage applies the layers of img (already fetched, or built in
// memory) to a new Tree, as Pull does.
func FromImage(ctx context.Context, ref string, img v1.Image, opts ...Option) (*Image, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	return fromImage(ctx, ref, img, o)
}

func fromImage(ctx context.Context, ref string, img v1.Image, o options) (*Image, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, withCtx(ctx, err))
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", ref, withCtx(ctx, err))
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, withCtx(ctx, err))
	}
	layerDir := filepath.Join(o.cacheDir, cachedir.Layers)
	store := &rootfs.BlobStore{Dir: filepath.Join(o.cacheDir, "blobs")}
	for _, d := range []string{layerDir, store.Dir} {
		if err := cachedir.MkdirPrivate(d); err != nil {
			return nil, err
		}
	}
	t := rootfs.NewTree()
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, withCtx(ctx, err))
		}
		entries, err := layerEntries(ctx, l, diffID, layerDir, store)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		origin := rootfs.Origin{Kind: rootfs.OriginBaseImage, Image: ref, ImageDigest: digest.String(), Layer: diffID.String()}
		if err := rootfs.ApplyLayerFrom(t, origin, entries, store); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
	}
	return &Image{Ref: ref, Digest: digest.String(), Config: cfg.Config, Tree: t}, nil
}

// layerIndex is the cached, validated form of one layer.
type layerIndex struct {
	Entries []rootfs.LayerEntry `json:"entries"`
}

// layerEntries returns the validated entries of l, from the cache when
// this layer was read before.
func layerEntries(ctx context.Context, l v1.Layer, diffID v1.Hash, layerDir string, store *rootfs.BlobStore) ([]rootfs.LayerEntry, error) {
	index := filepath.Join(layerDir, diffID.Algorithm+"-"+diffID.Hex+".json")
	if b, err := os.ReadFile(index); err == nil {
		var idx layerIndex
		if json.Unmarshal(b, &idx) == nil {
			return idx.Entries, nil
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, &rootfs.LayerError{Layer: diffID.String(), Err: withCtx(ctx, err)}
	}
	defer rc.Close()
	entries, err := rootfs.ReadLayer(ctx, rc, diffID.String(), store)
	if err != nil {
		return nil, withCtx(ctx, err)
	}
	b, err := json.Marshal(layerIndex{Entries: entries})
	if err != nil {
		return nil, err
	}
	return entries, atomicfile.WriteBytes(index, b, 0o600)
}

// withCtx makes an error that ctx caused say so: a transfer cut by a
// cancelled context may come back as a plain network error.
func withCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}
