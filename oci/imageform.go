package oci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// The image form is what `docker buildx build --push` makes of a build:
// an ordinary container image whose tar layers hold the layout's files at
// the root (docs/oci-artifact.md).

// maxImageLayers bounds the layers of an image form.
const maxImageLayers = 128

// imageFormFile reports whether a file at the root of an image-form
// filesystem is one of the layout's.
func imageFormFile(name string) bool { return MediaTypeOf(name) != "" || name == spec.SBOMFile }

// ParseImageForm reads the manifest of a container image (OCI or Docker
// schema 2) strictly and returns its tar layers: known layer media types,
// sha256 digests, sizes at most maxFile, no foreign layers.
func ParseImageForm(raw []byte, maxFile int64) (*v1.Manifest, error) {
	if len(raw) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: manifest of %d bytes (at most %d)", ErrInvalid, len(raw), MaxManifestBytes)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrInvalid, err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: manifest schemaVersion %d (want 2)", ErrInvalid, m.SchemaVersion)
	}
	if m.Config.MediaType != types.OCIConfigJSON && m.Config.MediaType != types.DockerConfigJSON {
		return nil, fmt.Errorf("%w: config media type %q", ErrUnsupported, m.Config.MediaType)
	}
	if len(m.Layers) == 0 || len(m.Layers) > maxImageLayers {
		return nil, fmt.Errorf("%w: %d layers (1 to %d)", ErrInvalid, len(m.Layers), maxImageLayers)
	}
	for i, d := range m.Layers {
		switch d.MediaType {
		case types.OCILayer, types.OCIUncompressedLayer, types.OCILayerZStd, types.DockerLayer, types.DockerUncompressedLayer:
		default:
			return nil, fmt.Errorf("layer %d: %w: media type %q is not a tar layer", i, ErrUnsupported, d.MediaType)
		}
		if err := checkDescriptor(fmt.Sprintf("layer %d", i), d, maxFile); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// pullImageForm writes the layout files held by the image's layers into
// tmp, each layer checked against its digest and size as it streams.
func pullImageForm(ctx context.Context, c *http.Client, repo name.Repository, m *v1.Manifest, tmp string, maxFile int64, rep *progress.Reporter) error {
	return streamLayers(ctx, c, repo, m, rep, func(r io.Reader) error { return extractLayer(r, tmp, maxFile) })
}

// streamLayers hands each layer of m, as it downloads, to extract, and
// fails unless the whole blob matches its descriptor's digest and size.
// What extract wrote before a mismatch was found is the caller's to discard.
func streamLayers(ctx context.Context, c *http.Client, repo name.Repository, m *v1.Manifest, rep *progress.Reporter, extract func(io.Reader) error) error {
	for i, d := range m.Layers {
		rc, err := getBlob(ctx, c, repo, d.Digest)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		task := rep.Start("downloading", "downloaded", fmt.Sprintf("layer %d", i), d.Size)
		hr := &hashReader{r: io.TeeReader(ctxio.Reader(ctx, io.LimitReader(rc, d.Size+1)), task), h: sha256.New()}
		err = extract(hr)
		if err == nil {
			// The tar ends before the stream may: read the rest, so that
			// the digest covers the whole blob.
			_, err = io.Copy(io.Discard, hr)
		}
		rc.Close()
		if err == nil && (hr.n != d.Size || hex.EncodeToString(hr.h.Sum(nil)) != d.Digest.Hex) {
			err = fmt.Errorf("%w: %d bytes, sha256:%s, want %d bytes, %s", ErrDigest, hr.n, hex.EncodeToString(hr.h.Sum(nil)), d.Size, d.Digest)
		}
		if err != nil {
			task.Fail()
			return fmt.Errorf("layer %d (%s): %w", i, d.Digest, err)
		}
		task.Done()
	}
	return nil
}

type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// extractLayer applies one tar layer (gzip, zstd or plain) to tmp: the
// layout's files at its root are written, whiteouts of them remove them,
// anything else is skipped. A layout file name that is not a regular file
// is refused.
func extractLayer(r io.Reader, tmp string, maxFile int64) error {
	return eachTarEntry(r, func(h *tar.Header, body io.Reader) error {
		p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if strings.Contains(p, "/") {
			return nil // not at the root
		}
		if p == ".wh..wh..opq" {
			for n := range fileTypes {
				os.Remove(filepath.Join(tmp, n))
			}
			os.Remove(filepath.Join(tmp, spec.SBOMFile))
			return nil
		}
		if w, ok := strings.CutPrefix(p, ".wh."); ok && imageFormFile(w) {
			os.Remove(filepath.Join(tmp, w))
			return nil
		}
		if !imageFormFile(p) {
			return nil
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: /%s is not a regular file (tar type %q)", ErrInvalid, p, h.Typeflag)
		}
		limit := maxFile
		if p == spec.ConfigFile {
			limit = layout.MaxConfigBytes
		}
		if h.Size > limit {
			return fmt.Errorf("%w: /%s of %d bytes (at most %d)", ErrInvalid, p, h.Size, limit)
		}
		if err := atomicfile.Write(filepath.Join(tmp, p), 0o644, func(w io.Writer) error {
			_, err := io.Copy(w, body)
			return err
		}); err != nil {
			return fmt.Errorf("/%s: %w", p, err)
		}
		return nil
	})
}

// eachTarEntry calls fn for each entry of a tar layer (gzip, zstd or
// plain), with the entry's contents, until the end or fn's first error.
func eachTarEntry(r io.Reader, fn func(h *tar.Header, body io.Reader) error) error {
	tr, closeTar, err := openTar(r)
	if err != nil {
		return err
	}
	defer closeTar()
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

// openTar reads a tar layer, gzip, zstd or plain, told by its magic bytes.
func openTar(r io.Reader) (*tar.Reader, func(), error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return tar.NewReader(zr), func() { zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return tar.NewReader(zr), zr.Close, nil
	}
	return tar.NewReader(br), func() {}, nil
}
