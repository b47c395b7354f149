// Package frontendimage makes the BuildKit frontend's image without Docker:
// one reproducible layer holding the static frontend binary and the
// frontend's settings (frontend.json: the kernel bundle `KERNEL linux`
// means, pinned by digest), with the labels BuildKit reads from a frontend
// image. `make frontend-image` pushes it (internal/cmd/frontend-image).
package frontendimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where the image holds its files.
const (
	// BinaryPath is the frontend program, the image's entrypoint.
	BinaryPath = "/bin/uni-frontend"
	// InfoPath is the frontend's settings, an Info as JSON.
	InfoPath = "/etc/uni/frontend.json"
)

// Labels BuildKit reads from a frontend image's config.
const (
	// LabelNetworkNone says the frontend needs no network of its own.
	LabelNetworkNone = "moby.buildkit.frontend.network.none"
	// LabelCaps lists the gateway capabilities the frontend uses.
	LabelCaps = "moby.buildkit.frontend.caps"
	// Caps is LabelCaps's value: named inputs, subrequests (--print,
	// --check) and named contexts, as Dockerfile's frontend declares.
	Caps = "moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
)

// Platform of the frontend image.
const (
	OS   = "linux"
	Arch = "amd64"
)

// maxInfoBytes bounds frontend.json.
const maxInfoBytes = 64 << 10

// Info is frontend.json: what the frontend image was built with.
type Info struct {
	// DefaultKernel is the kernel bundle image `KERNEL linux` (and a
	// Unifile without KERNEL) means, pinned by digest:
	// host:port/uniforge/kernel:<release>@sha256:….
	DefaultKernel string `json:"defaultKernel"`
	// Version is the frontend's version.
	Version string `json:"version"`
}

// Validate checks every field: DefaultKernel a reference pinned by a
// sha256 digest, Version a short printable word.
func (i Info) Validate() error {
	if i.DefaultKernel == "" {
		return errors.New("defaultKernel: missing")
	}
	d, err := name.NewDigest(i.DefaultKernel, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("defaultKernel %q: want a reference pinned by digest (host/repo:tag@sha256:…): %w", i.DefaultKernel, err)
	}
	if h, err := v1.NewHash(d.DigestStr()); err != nil || h.Algorithm != "sha256" {
		return fmt.Errorf("defaultKernel %q: want a sha256 digest", i.DefaultKernel)
	}
	if i.Version == "" || len(i.Version) > 128 || strings.IndexFunc(i.Version, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("version %q: want 1 to 128 printable characters without spaces", i.Version)
	}
	return nil
}

// ParseInfo reads frontend.json strictly: one JSON object with exactly
// Info's fields, each valid.
func ParseInfo(data []byte) (Info, error) {
	var i Info
	if len(data) > maxInfoBytes {
		return i, fmt.Errorf("%d bytes, at most %d", len(data), maxInfoBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&i); err != nil {
		return Info{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Info{}, errors.New("data after the JSON object")
	}
	if err := i.Validate(); err != nil {
		return Info{}, err
	}
	return i, nil
}

// ReadInfo reads and checks the frontend.json at path (InfoPath inside
// the frontend image); errors name the file.
func ReadInfo(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInfoBytes+1))
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	i, err := ParseInfo(data)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return i, nil
}

// Build makes the frontend image of the static x86-64 ELF program binary
// and info: one layer with BinaryPath (0755), InfoPath (0644) and an empty
// /tmp (1777), every time 0 and owner 0:0, so the same binary and info
// always give the same digest; entrypoint BinaryPath, platform linux/amd64,
// and BuildKit's frontend labels.
func Build(binary string, info Info) (v1.Image, error) {
	if err := info.Validate(); err != nil {
		return nil, fmt.Errorf("frontend info: %w", err)
	}
	prog, err := readStatic(binary)
	if err != nil {
		return nil, err
	}
	infoJSON, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	layerTar, err := tarFiles([]entry{
		{name: "bin/", mode: 0o755},
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, body: prog},
		{name: "etc/", mode: 0o755},
		{name: "etc/uni/", mode: 0o755},
		{name: strings.TrimPrefix(InfoPath, "/"), mode: 0o644, body: append(infoJSON, '\n')},
		{name: "tmp/", mode: 0o1777},
	})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	epoch := v1.Time{Time: time.Unix(0, 0).UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: epoch, CreatedBy: "make frontend-image", Comment: "uni frontend " + info.Version}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = OS, Arch, epoch
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Labels = map[string]string{LabelNetworkNone: "true", LabelCaps: Caps}
	return mutate.ConfigFile(img, cf)
}

// readStatic reads binary, refusing anything but a statically linked
// x86-64 ELF executable: the image has no dynamic loader or libraries.
func readStatic(binary string) ([]byte, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not an ELF program: %w", binary, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: a %s %s, want an x86-64 executable", binary, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s: dynamically linked, and the frontend image has no libraries: build it with CGO_ENABLED=0", binary)
		}
	}
	return data, nil
}

// entry is one entry of the layer; a name ending in / is a directory.
type entry struct {
	name string
	mode int64
	body []byte
}

// tarFiles is the tar of entries, in the order given, with time 0 and
// owner 0:0.
func tarFiles(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
