package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Bounds on what a pull accepts before it downloads anything.
const (
	// MaxManifestBytes bounds a manifest or an index (ours are ~2 KiB).
	MaxManifestBytes = 4 << 20
	// DefaultMaxFileBytes bounds every file but config.json (WithMaxFileSize
	// changes it): more than any rootfs or disk image uni builds.
	DefaultMaxFileBytes = 64 << 30
)

var (
	// ErrUnsupported is wrapped by the error for a manifest that is not one
	// of ours: another artifactType or an unknown media type.
	ErrUnsupported = errors.New("not a uni unikernel artifact")
	// ErrInvalid is wrapped by the error for a manifest of ours that breaks
	// the spec: a bad title, a duplicate, a missing file, an absurd size.
	ErrInvalid = errors.New("invalid unikernel manifest")
	// ErrDigest is wrapped by the error for a blob whose bytes do not match
	// its descriptor's digest or size.
	ErrDigest = errors.New("blob does not match its digest")
)

// Blob is one file of an artifact: its descriptor and, on the push side,
// where its bytes are.
type Blob struct {
	Name string // the title: spec.KernelFile, …
	Path string // on the push side
	Desc v1.Descriptor
}

// Artifact is a layout as OCI objects: the blobs, the image manifest and
// the one-platform index that points at it.
type Artifact struct {
	Blobs        []Blob // config.json first; config.json is also the config blob
	Manifest     []byte
	ManifestDesc v1.Descriptor
	Index        []byte
	IndexDesc    v1.Descriptor
}

// NewArtifact builds the manifest and index of a layout's files (as
// layout.Files lists them; disk.img is left out unless withDisk). Nothing
// in them depends on the time or the host: the same layout gives the same
// digests, so a second push is a no-op and a signature stays valid.
func NewArtifact(cfg spec.ImageConfig, files []layout.File, withDisk bool) (*Artifact, error) {
	a := &Artifact{}
	var configDesc *v1.Descriptor
	for _, f := range files {
		if f.Name == spec.DiskFile && !withDisk {
			continue
		}
		mt := MediaTypeOf(f.Name)
		if mt == "" {
			return nil, fmt.Errorf("%s: not a file of an image layout", f.Name)
		}
		h, err := v1.NewHash(f.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		d := v1.Descriptor{
			MediaType:   types.MediaType(mt),
			Size:        f.Size,
			Digest:      h,
			Annotations: map[string]string{AnnotationTitle: f.Name},
		}
		a.Blobs = append(a.Blobs, Blob{Name: f.Name, Path: f.Path, Desc: d})
		if f.Name == spec.ConfigFile {
			configDesc = &v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}
		}
	}
	if configDesc == nil {
		return nil, fmt.Errorf("no %s among the layout's files", spec.ConfigFile)
	}
	layers := make([]v1.Descriptor, len(a.Blobs))
	for i, b := range a.Blobs {
		layers[i] = b.Desc
	}
	ann := Annotations(cfg)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        *configDesc,
		Layers:        layers,
		Annotations:   ann,
	}
	var err error
	if a.Manifest, a.ManifestDesc, err = marshal(m, types.OCIManifestSchema1); err != nil {
		return nil, err
	}
	a.ManifestDesc.ArtifactType = ArtifactType
	platform := Platform(cfg)
	a.ManifestDesc.Platform = &platform
	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		ArtifactType:  ArtifactType,
		Manifests:     []v1.Descriptor{a.ManifestDesc},
		Annotations:   ann,
	}
	if a.Index, a.IndexDesc, err = marshal(idx, types.OCIImageIndex); err != nil {
		return nil, err
	}
	return a, nil
}

// Platform is the index entry's platform of an image: linux, and its
// kernel's architecture in OCI's spelling.
func Platform(cfg spec.ImageConfig) v1.Platform {
	arch := cfg.Arch()
	if arch == "i386" {
		arch = "386" // Debian's spelling to OCI's (GOARCH)
	}
	return v1.Platform{OS: PlatformOS, Architecture: arch}
}

// Annotations are the manifest's and the index's: created from the
// build's SOURCE_DATE_EPOCH, version, source and revision from the image's
// LABELs of those names, and the kernel.
func Annotations(cfg spec.ImageConfig) map[string]string {
	ann := map[string]string{
		AnnotationCreated: time.Unix(cfg.Build.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
	}
	for _, k := range []string{AnnotationVersion, AnnotationSource, AnnotationRevision} {
		if v := cfg.Labels[k]; v != "" {
			ann[k] = v
		}
	}
	if cfg.Kernel.Release != "" {
		ann[AnnotationKernelRelease] = cfg.Kernel.Release
	}
	if cfg.Kernel.Digest != "" {
		ann[AnnotationKernelDigest] = cfg.Kernel.Digest
	}
	return ann
}

func marshal(v any, mt types.MediaType) ([]byte, v1.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	h, n, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return b, v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}

// CheckTitle accepts a layer title only if it is the plain name of a file
// a layout holds: no path, no "..", nothing a pull could write elsewhere.
func CheckTitle(title string) error {
	switch {
	case title == "":
		return fmt.Errorf("%w: a layer has no %s annotation", ErrInvalid, AnnotationTitle)
	case strings.ContainsAny(title, `/\`) || title == "." || title == "..":
		return fmt.Errorf("%w: layer title %q is a path, not a file name", ErrInvalid, title)
	case MediaTypeOf(title) == "":
		return fmt.Errorf("%w: layer title %q is not a file of an image layout (%s)", ErrInvalid, title, strings.Join(slices.Sorted(mapKeys(fileTypes)), ", "))
	}
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ParseManifest reads an image manifest of ours strictly and returns the
// files it names, in its order: it refuses a manifest of another type or
// with an unknown media type (ErrUnsupported), and one whose titles are not
// plain, distinct layout file names, that lacks a required file, or gives a
// size above maxFile (config.json: layout.MaxConfigBytes) or a digest that
// is not sha256 (ErrInvalid). Nothing is downloaded before it passes.
func ParseManifest(raw []byte, maxFile int64) (*v1.Manifest, []Blob, error) {
	if len(raw) > MaxManifestBytes {
		return nil, nil, fmt.Errorf("%w: manifest of %d bytes (at most %d)", ErrInvalid, len(raw), MaxManifestBytes)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("%w: manifest: %w", ErrInvalid, err)
	}
	if m.SchemaVersion != 2 {
		return nil, nil, fmt.Errorf("%w: manifest schemaVersion %d (want 2)", ErrInvalid, m.SchemaVersion)
	}
	if m.MediaType != "" && m.MediaType != types.OCIManifestSchema1 {
		return nil, nil, fmt.Errorf("%w: manifest media type %q", ErrUnsupported, m.MediaType)
	}
	if m.ArtifactType != ArtifactType && !(m.ArtifactType == "" && m.Config.MediaType == ConfigMediaType) {
		at := m.ArtifactType
		if at == "" {
			at = string(m.Config.MediaType)
		}
		return nil, nil, fmt.Errorf("%w: artifact type %q (want %q)", ErrUnsupported, at, ArtifactType)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, nil, fmt.Errorf("%w: config media type %q (want %q)", ErrUnsupported, m.Config.MediaType, ConfigMediaType)
	}
	var blobs []Blob
	seen := map[string]bool{}
	for i, d := range m.Layers {
		title := d.Annotations[AnnotationTitle]
		if err := CheckTitle(title); err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if seen[title] {
			return nil, nil, fmt.Errorf("layer %d: %w: %q appears twice", i, ErrInvalid, title)
		}
		seen[title] = true
		if want := MediaTypeOf(title); string(d.MediaType) != want {
			return nil, nil, fmt.Errorf("layer %d (%s): %w: media type %q (want %q)", i, title, ErrUnsupported, d.MediaType, want)
		}
		if err := checkDescriptor(title, d, maxFile); err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		blobs = append(blobs, Blob{Name: title, Desc: d})
	}
	for _, name := range layout.Required {
		if !seen[name] {
			return nil, nil, fmt.Errorf("%w: no layer titled %q (a unikernel has %s)", ErrInvalid, name, strings.Join(layout.Required, ", "))
		}
	}
	for _, b := range blobs {
		if b.Name == spec.ConfigFile && (b.Desc.Digest != m.Config.Digest || b.Desc.Size != m.Config.Size) {
			return nil, nil, fmt.Errorf("%w: the layer titled %s is not the config blob", ErrInvalid, spec.ConfigFile)
		}
	}
	return &m, blobs, nil
}

func checkDescriptor(title string, d v1.Descriptor, maxFile int64) error {
	limit := maxFile
	if title == spec.ConfigFile {
		limit = layout.MaxConfigBytes
	}
	if d.Size < 0 || d.Size > limit {
		return fmt.Errorf("%s: %w: size %d (at most %d)", title, ErrInvalid, d.Size, limit)
	}
	if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 {
		return fmt.Errorf("%s: %w: digest %q is not sha256", title, ErrInvalid, d.Digest)
	}
	if len(d.URLs) > 0 {
		return fmt.Errorf("%s: %w: a foreign layer (urls) is not pulled", title, ErrInvalid)
	}
	return nil
}

// PickManifest chooses the manifest for platform ("os/arch") from an index.
func PickManifest(raw []byte, platform string) (v1.Descriptor, error) {
	if len(raw) > MaxManifestBytes {
		return v1.Descriptor{}, fmt.Errorf("%w: index of %d bytes (at most %d)", ErrInvalid, len(raw), MaxManifestBytes)
	}
	var idx v1.IndexManifest
	if err := json.NewDecoder(io.LimitReader(bytes.NewReader(raw), MaxManifestBytes)).Decode(&idx); err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: index: %w", ErrInvalid, err)
	}
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("platform %q: %w", platform, err)
	}
	var have []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		have = append(have, d.Platform.String())
		if d.Platform.OS == want.OS && d.Platform.Architecture == want.Architecture && (want.Variant == "" || d.Platform.Variant == want.Variant) {
			if d.MediaType != types.OCIManifestSchema1 && d.MediaType != types.DockerManifestSchema2 {
				return v1.Descriptor{}, fmt.Errorf("%w: index entry for %s has media type %q", ErrUnsupported, platform, d.MediaType)
			}
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no manifest for platform %s in the index (it has %s)", platform, strings.Join(have, ", "))
}
