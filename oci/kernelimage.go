package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

// A kernel bundle image is an ordinary container image whose one tar
// layer holds the bundle directory at its root, so that BuildKit can mount
// it (llb.Image) and kernel.Open the mount, and uni can fetch it into its
// cache (docs/kernel-bundles.md).

// Bounds on what a kernel bundle fetch accepts.
const (
	// MaxKernelBundleBytes bounds the sum of a bundle's file sizes (a
	// distribution's cloud kernel bundle is about 100 MiB, a generic one 500).
	MaxKernelBundleBytes = 4 << 30
	// MaxKernelBundleFile bounds each file (the kernel, one module).
	MaxKernelBundleFile = 1 << 30
	// MaxKernelBundleMeta bounds the files read whole into memory:
	// bundle.json, modules.json, config, LICENSE.
	MaxKernelBundleMeta = 64 << 20
	// MaxKernelBundleEntries bounds the tar entries (a generic kernel has
	// about 6000 modules).
	MaxKernelBundleEntries = 200000
	// maxImageConfigBytes bounds an image config blob.
	maxImageConfigBytes = 1 << 20
)

var (
	// ErrNotKernelBundle is wrapped by the error for an image that is not
	// a kernel bundle: another kind of image, or one without the bundle labels.
	ErrNotKernelBundle = errors.New("not a kernel bundle image")
	// ErrInvalidKernelBundle is wrapped by the error for a kernel bundle
	// image that breaks the rules: a path that climbs out, a link, a file
	// that is no bundle's, an absurd size, a digest label that is not
	// bundle.json's.
	ErrInvalidKernelBundle = errors.New("invalid kernel bundle image")
)

// bundleFiles are the files at a bundle's root, bundleTrees its
// directories; nothing else is extracted from a bundle image.
var (
	bundleFiles = map[string]bool{kernel.DescriptorFile: true, kernel.KernelFile: true, kernel.ConfigFile: true,
		kernel.ModuleIndexFile: true, kernel.LicenseFile: true}
	bundleTrees = map[string]bool{kernel.ModulesDir: true, kernel.BootDir: true}
)

// KernelPushed says what PushKernelBundle wrote.
type KernelPushed struct {
	Ref      string  // repo:tag as pushed
	Manifest v1.Hash // the image manifest the tag names
	Layer    v1.Hash // its one layer
	Uploaded bool    // whether the layer was sent (not already there or mounted)
}

// PushKernelBundle publishes the bundle b as a kernel bundle image under
// ref (a tag). The bundle is verified against its digest first. The image
// is reproducible: entries in walk order (sorted by name), every time set
// to WithSourceDateEpoch's (default 0), owner 0:0, modes 0755 for
// directories and executables and 0644 for other files; so one bundle
// gives one manifest digest, and a second push sends no layer.
func PushKernelBundle(ctx context.Context, b *kernel.Bundle, ref string, opts ...Option) (*KernelPushed, error) {
	o := makeOptions(opts)
	r, err := o.parseRef(ref)
	if err != nil {
		return nil, err
	}
	tag, ok := r.(name.Tag)
	if !ok {
		return nil, fmt.Errorf("push %s: give a tag, not a digest: the digest is the image's own", ref)
	}
	if err := b.Verify(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "uni-kernel-push-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	img, err := newKernelImage(ctx, b, filepath.Join(tmp, "layer.tar.gz"), o.epoch)
	if err != nil {
		return nil, fmt.Errorf("kernel bundle %s: %w", b.Desc.Digest, err)
	}
	ropts := o.remoteOptions(ctx)
	p, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, err
	}
	mounts, err := mountRepos(tag.Context(), o)
	if err != nil {
		return nil, err
	}
	rep := progress.New(o.log)
	up, err := uploadBlob(ctx, p, tag.Context(), img.layer, mounts, rep, ropts)
	if err != nil {
		return nil, fmt.Errorf("push %s: layer: %w", tag, err)
	}
	if err := p.Upload(ctx, tag.Context(), &bytesLayer{data: img.config, desc: img.configDesc}); err != nil {
		return nil, fmt.Errorf("push %s: image config: %w", tag, err)
	}
	if err := p.Put(ctx, tag, rawManifest{img.manifest, types.OCIManifestSchema1}); err != nil {
		return nil, fmt.Errorf("push %s: manifest: %w", tag, err)
	}
	rep.Printf("pushed kernel bundle %s (%s) as %s@%s", b.Desc.Release, b.Desc.Digest, tag, img.manifestDesc.Digest)
	return &KernelPushed{Ref: tag.String(), Manifest: img.manifestDesc.Digest, Layer: img.layer.Desc.Digest, Uploaded: up}, nil
}

// kernelImage is a bundle as OCI objects; the layer is a file.
type kernelImage struct {
	layer        Blob
	config       []byte
	configDesc   v1.Descriptor
	manifest     []byte
	manifestDesc v1.Descriptor
}

// newKernelImage writes b's layer to layerPath and makes the image config
// and manifest around it.
func newKernelImage(ctx context.Context, b *kernel.Bundle, layerPath string, epoch int64) (*kernelImage, error) {
	when := time.Unix(epoch, 0).UTC()
	layerDesc, diffID, err := writeBundleLayer(ctx, b.Dir, layerPath, when)
	if err != nil {
		return nil, err
	}
	arch := b.Desc.Arch
	if arch == "i386" {
		arch = "386" // Debian's spelling to Go's, which OCI uses
	}
	labels := map[string]string{
		LabelKernelBundleDigest:  b.Desc.Digest,
		LabelKernelBundleRelease: b.Desc.Release,
		LabelKernelBundleVersion: b.Desc.Version,
	}
	cf := v1.ConfigFile{
		Architecture: arch,
		OS:           PlatformOS,
		Created:      v1.Time{Time: when},
		Config:       v1.Config{Labels: labels},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		History: []v1.History{{Created: v1.Time{Time: when}, CreatedBy: "uni kernel push",
			Comment: fmt.Sprintf("kernel bundle %s %s", b.Desc.Name, b.Desc.Release)}},
	}
	img := &kernelImage{layer: Blob{Name: "kernel bundle layer", Path: layerPath, Desc: layerDesc}}
	if img.config, img.configDesc, err = marshal(cf, ImageConfigMediaType); err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        img.configDesc,
		Layers:        []v1.Descriptor{layerDesc},
		Annotations:   labels,
	}
	if img.manifest, img.manifestDesc, err = marshal(m, types.OCIManifestSchema1); err != nil {
		return nil, err
	}
	return img, nil
}

// writeBundleLayer writes the gzip tar of the bundle directory dir to dst
// and returns its descriptor and diff ID (the sha256 of the tar).
func writeBundleLayer(ctx context.Context, dir, dst string, when time.Time) (v1.Descriptor, v1.Hash, error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	defer f.Close()
	compressed := &countHash{h: sha256.New()}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(f, compressed), gzip.DefaultCompression)
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, uncompressed))
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		h := &tar.Header{Name: rel, ModTime: when}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, rel+"/", 0o755
			return tw.WriteHeader(h)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file or directory: a bundle holds nothing else", p)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		h.Typeflag, h.Size, h.Mode = tar.TypeReg, fi.Size(), 0o644
		if fi.Mode()&0o100 != 0 {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if n, err := io.Copy(tw, ctxio.Reader(ctx, in)); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		} else if n != h.Size {
			return fmt.Errorf("%s: changed while being read", p)
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	desc := v1.Descriptor{
		MediaType: LayerMediaType,
		Size:      compressed.n,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressed.h.Sum(nil))},
	}
	return desc, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uncompressed.Sum(nil))}, nil
}

// countHash hashes and counts what is written to it.
type countHash struct {
	h hash.Hash
	n int64
}

func (c *countHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// KernelFetcher is a kernel.Fetcher that takes registry references
// (those with an explicit registry, oci.IsRemoteRef) to FetchKernelBundle
// with opts; any other name is not found, so kernel.Resolve goes on.
func KernelFetcher(opts ...Option) kernel.Fetcher {
	return func(ctx context.Context, ref, dir string) error {
		if !IsRemoteRef(ref) {
			return kernel.ErrNotFound // a name, not a reference: not the registry's
		}
		return FetchKernelBundle(ctx, ref, dir, opts...)
	}
}

// FetchKernelBundle writes the files of the kernel bundle image ref into
// dir, an empty directory. Every layer is checked against its digest and
// size as it streams, and read strictly: only regular files and
// directories with a bundle's names (bundle.json, kernel, config, LICENSE,
// modules.json, modules/…, boot/…), no links, no path that climbs out, no
// file twice, sizes within MaxKernelBundleFile and MaxKernelBundleBytes.
// bundle.json's digest must be the image's LabelKernelBundleDigest; the
// caller (kernel.Resolve) checks the files against it. A reference the
// registry does not have gives an error wrapping kernel.ErrNotFound. On
// any error dir may hold part of the bundle: it is the caller's to remove.
// The errors name the reference only where the registry's answer does;
// the caller names it.
func FetchKernelBundle(ctx context.Context, ref, dir string, opts ...Option) error {
	o := makeOptions(opts)
	res, err := o.resolve(ctx, ref)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && isNotFound(terr) {
			return fmt.Errorf("%w: %w", kernel.ErrNotFound, terr) // terr names the URL
		}
		return err
	}
	if !res.ImageForm {
		return fmt.Errorf("%w: it is a unikernel artifact", ErrNotKernelBundle)
	}
	client, err := o.blobClient(ctx, res.Ref.Context())
	if err != nil {
		return err
	}
	cf, err := readImageConfig(ctx, client, res)
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	want := cf.Config.Labels[LabelKernelBundleDigest]
	if _, err := v1.NewHash(want); err != nil {
		return fmt.Errorf("%w: no valid %s label (%q)", ErrNotKernelBundle, LabelKernelBundleDigest, want)
	}
	if plat := cf.OS + "/" + cf.Architecture; plat != o.platform {
		return fmt.Errorf("a kernel bundle for %s, want %s", plat, o.platform)
	}
	var total int64
	for _, l := range res.Manifest.Layers {
		total += l.Size
	}
	if total > MaxKernelBundleBytes {
		return fmt.Errorf("%w: layers of %d bytes (at most %d)", ErrInvalidKernelBundle, total, int64(MaxKernelBundleBytes))
	}
	rep := progress.New(o.log)
	x := &bundleExtract{dir: dir}
	if err := streamLayers(ctx, client, res.Ref.Context(), res.Manifest, rep, x.layer); err != nil {
		return err
	}
	b, err := kernel.Open(dir)
	if err != nil {
		return err
	}
	if b.Desc.Digest != want {
		return fmt.Errorf("%w: bundle.json says %s, the image's label %s", ErrInvalidKernelBundle, b.Desc.Digest, want)
	}
	rep.Printf("fetched kernel bundle %s (%s) from %s@%s", b.Desc.Release, b.Desc.Digest, res.Ref.Context(), res.ManifestDigest)
	return nil
}

// isNotFound tells a registry's "no such manifest or repository".
func isNotFound(e *transport.Error) bool {
	if e.StatusCode == 404 {
		return true
	}
	for _, d := range e.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// readImageConfig fetches a container image's config blob, checked
// against its descriptor, and parses it.
func readImageConfig(ctx context.Context, c *http.Client, res *Resolved) (*v1.ConfigFile, error) {
	d := res.Manifest.Config
	if d.Size < 0 || d.Size > maxImageConfigBytes {
		return nil, fmt.Errorf("%w: config of %d bytes (at most %d)", ErrInvalidKernelBundle, d.Size, maxImageConfigBytes)
	}
	rc, err := getBlob(ctx, c, res.Ref.Context(), d.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := copyVerified(&buf, ctxio.Reader(ctx, rc), d, "config blob"); err != nil {
		return nil, err
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(buf.Bytes(), &cf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKernelBundle, err)
	}
	return &cf, nil
}

// bundleExtract writes the layers of a bundle image into dir.
type bundleExtract struct {
	dir     string
	entries int
	bytes   int64
}

// layer extracts one tar layer (gzip, zstd or plain).
func (x *bundleExtract) layer(r io.Reader) error {
	return eachTarEntry(r, x.entry)
}

// entry extracts one tar entry of a bundle layer.
func (x *bundleExtract) entry(h *tar.Header, body io.Reader) error {
	if x.entries++; x.entries > MaxKernelBundleEntries {
		return fmt.Errorf("%w: more than %d entries", ErrInvalidKernelBundle, MaxKernelBundleEntries)
	}
	rel, err := bundleEntryPath(h)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil // the root directory
	}
	p := filepath.Join(x.dir, filepath.FromSlash(rel))
	if h.Typeflag == tar.TypeDir {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	}
	limit := int64(MaxKernelBundleFile)
	if bundleFiles[rel] && rel != kernel.KernelFile {
		limit = MaxKernelBundleMeta
	}
	if h.Size < 0 || h.Size > limit {
		return fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrInvalidKernelBundle, rel, h.Size, limit)
	}
	if x.bytes += h.Size; x.bytes > MaxKernelBundleBytes {
		return fmt.Errorf("%w: files of more than %d bytes", ErrInvalidKernelBundle, int64(MaxKernelBundleBytes))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	mode := os.FileMode(0o644)
	if h.Mode&0o100 != 0 {
		mode = 0o755
	}
	// O_EXCL: a name given twice is refused, and nothing is followed.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s twice", ErrInvalidKernelBundle, rel)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != h.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// bundleEntryPath checks a tar entry of a bundle image and returns its
// slash path below the bundle directory ("" for the root itself).
func bundleEntryPath(h *tar.Header) (string, error) {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink, tar.TypeLink:
		return "", fmt.Errorf("%w: %s is a link (to %q): a kernel bundle holds only files and directories", ErrInvalidKernelBundle, h.Name, h.Linkname)
	default:
		return "", fmt.Errorf("%w: %s has tar type %q: a kernel bundle holds only files and directories", ErrInvalidKernelBundle, h.Name, h.Typeflag)
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			// A few bytes of sparse map could describe a file of gigabytes.
			return "", fmt.Errorf("%w: %s is a sparse file", ErrInvalidKernelBundle, h.Name)
		}
	}
	n := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
	if n == "" || n == "." {
		if h.Typeflag != tar.TypeDir {
			return "", fmt.Errorf("%w: entry %q", ErrInvalidKernelBundle, h.Name)
		}
		return "", nil
	}
	if strings.HasPrefix(n, "/") || path.Clean(n) != n || strings.ContainsAny(n, "\x00\\") {
		return "", fmt.Errorf("%w: entry %q: not a plain relative path", ErrInvalidKernelBundle, h.Name)
	}
	for e := range strings.SplitSeq(n, "/") {
		if e == ".." || strings.HasPrefix(e, ".wh.") {
			return "", fmt.Errorf("%w: entry %q: no .. and no whiteouts in a kernel bundle", ErrInvalidKernelBundle, h.Name)
		}
	}
	top, below, _ := strings.Cut(n, "/")
	switch {
	case bundleFiles[n] && h.Typeflag == tar.TypeReg:
	case bundleTrees[top] && (below != "" || h.Typeflag == tar.TypeDir):
	default:
		return "", fmt.Errorf("%w: %s: not a file of a kernel bundle", ErrInvalidKernelBundle, h.Name)
	}
	return n, nil
}
