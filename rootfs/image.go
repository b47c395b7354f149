package rootfs

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
)

// Image is a base root made from an OCI or Docker image.
type Image struct {
	Ref    string    // the reference as written
	Digest string    // manifest digest, sha256:…
	Config v1.Config // the image's run config (Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts)
	Tree   *Tree
}

type imageOptions struct {
	cacheDir string
	platform v1.Platform
	keychain authn.Keychain
	remote   []remote.Option
}

// ImageOption configures PullImage.
type ImageOption func(*imageOptions)

// WithCacheDir sets where validated layers and file bodies are kept
// (default: the user's cache directory, uni/layers).
func WithCacheDir(dir string) ImageOption { return func(o *imageOptions) { o.cacheDir = dir } }

// WithPlatform picks the image of an index (default linux/<this machine's arch>).
func WithPlatform(p v1.Platform) ImageOption { return func(o *imageOptions) { o.platform = p } }

// WithKeychain sets where registry credentials come from (default: the
// user's docker config, as `docker login` writes it).
func WithKeychain(k authn.Keychain) ImageOption { return func(o *imageOptions) { o.keychain = k } }

// WithRemoteOptions passes options through to go-containerregistry.
func WithRemoteOptions(opts ...remote.Option) ImageOption {
	return func(o *imageOptions) { o.remote = append(o.remote, opts...) }
}

// PullImage fetches ref from its registry and applies its layers, in
// order, to a new Tree. Layers are validated once (no entry may climb out
// of the root, no symlink may point above it) and cached by diff id, so a
// second pull reads only the manifest.
func PullImage(ctx context.Context, ref string, opts ...ImageOption) (*Image, error) {
	o := imageOptions{
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		keychain: authn.DefaultKeychain,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cacheDir == "" {
		d, err := cachedir.Dir()
		if err != nil {
			return nil, err
		}
		o.cacheDir = d
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
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return FromImage(ref, img, o.cacheDir)
}

// FromImage applies the layers of img to a new Tree, using cacheDir for
// validated layers and file bodies.
func FromImage(ref string, img v1.Image, cacheDir string) (*Image, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	store := &blobStore{dir: filepath.Join(cacheDir, "blobs")}
	t := NewTree()
	for _, l := range layers {
		entries, err := layerEntries(l, cacheDir, store)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		if err := apply(t, entries, store); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
	}
	return &Image{Ref: ref, Digest: digest.String(), Config: cfg.Config, Tree: t}, nil
}

// layerEntries returns the validated entries of l, from the cache when
// this layer was read before.
func layerEntries(l v1.Layer, cacheDir string, store *blobStore) ([]layerEntry, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	index := filepath.Join(cacheDir, "layers", diffID.Algorithm+"-"+diffID.Hex+".json")
	if entries, ok := loadLayerIndex(index); ok {
		return entries, nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, &LayerError{Layer: diffID.String(), Err: err}
	}
	defer rc.Close()
	entries, err := readLayer(rc, diffID.String(), store)
	if err != nil {
		return nil, err
	}
	return entries, saveLayerIndex(index, entries)
}
