package rootfs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
)

// Whiteout names of the OCI image layer spec.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// LayerEntry is one tar header of an image layer, validated and with its
// bytes moved into a BlobStore. A layer is kept as a list of these, so a
// warm build applies a layer without reading its tar again (package
// baseimage caches the list as JSON, hence the short tags).
type LayerEntry struct {
	Path     string      `json:"p"`
	Mode     fs.FileMode `json:"m"`
	UID      uint32      `json:"u,omitempty"`
	GID      uint32      `json:"g,omitempty"`
	Size     int64       `json:"s,omitempty"`
	Link     string      `json:"l,omitempty"`  // symlink target
	Hardlink string      `json:"hl,omitempty"` // path of the entry this is a hard link to
	Blob     string      `json:"b,omitempty"`  // content store name (sha256 hex)
	Rdev     uint64      `json:"r,omitempty"`
	Whiteout bool        `json:"w,omitempty"` // remove Path
	Opaque   bool        `json:"o,omitempty"` // remove what lower layers have below Path
}

// LayerError says which entry of which layer is wrong.
type LayerError struct {
	Layer string // the layer's digest or name
	Entry string // the tar entry name, verbatim
	Err   error
}

func (e *LayerError) Error() string {
	if e.Entry == "" {
		return fmt.Sprintf("layer %s: %v", e.Layer, e.Err)
	}
	return fmt.Sprintf("layer %s: entry %s: %v", e.Layer, Quote(e.Entry), e.Err)
}

func (e *LayerError) Unwrap() error { return e.Err }

// ErrEscape is wrapped by errors for paths and links that would lead
// outside the root.
var ErrEscape = errors.New("escapes the root")

// cleanLayerPath turns a tar entry name into a tree path, refusing names
// that climb above the root ("../x", "a/../../x") and names CheckPath
// refuses.
func cleanLayerPath(name string) (string, error) {
	if climbsAbove(0, name) {
		return "", fmt.Errorf("path %w", ErrEscape)
	}
	p := Clean(name)
	if err := CheckPath(p); err != nil {
		return "", err
	}
	return p, nil
}

// checkLayerLink refuses a symlink target that no guest could store, and a
// relative one that climbs above the root from the link's directory.
// Absolute targets stay inside by definition.
func checkLayerLink(linkPath, target string) error {
	if err := CheckLink(linkPath, target); err != nil {
		return err
	}
	if strings.HasPrefix(target, "/") {
		return nil
	}
	if climbsAbove(Depth(path.Dir(linkPath)), target) {
		return fmt.Errorf("symlink to %s %w", Quote(target), ErrEscape)
	}
	return nil
}

// climbsAbove says whether the relative path rel, walked from a directory
// depth levels below the root, ever goes above the root.
func climbsAbove(depth int, rel string) bool {
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// ReadLayer validates the uncompressed layer tar r (name says which layer,
// for errors) and moves its regular files into store, returning its
// entries in tar order. A wrong entry gives a *LayerError naming it; ctx
// being done stops the read between entries and within a file's bytes.
func ReadLayer(ctx context.Context, r io.Reader, name string, store *BlobStore) ([]LayerEntry, error) {
	tr := tar.NewReader(r)
	var out []LayerEntry
	for {
		if err := ctx.Err(); err != nil {
			return nil, &LayerError{Layer: name, Err: err}
		}
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, &LayerError{Layer: name, Err: err}
		}
		e, err := layerEntryFrom(ctx, h, tr, store)
		if err != nil {
			return nil, &LayerError{Layer: name, Entry: h.Name, Err: err}
		}
		if e != nil {
			out = append(out, *e)
		}
	}
}

func layerEntryFrom(ctx context.Context, h *tar.Header, r io.Reader, store *BlobStore) (*LayerEntry, error) {
	p, err := cleanLayerPath(h.Name)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(p)
	if base == opaqueWhiteout {
		return &LayerEntry{Path: Clean(dir), Opaque: true}, nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return &LayerEntry{Path: Clean(dir + strings.TrimPrefix(base, whiteoutPrefix)), Whiteout: true}, nil
	}
	if p == "/" && h.Typeflag != tar.TypeDir {
		return nil, errors.New("the root must be a directory")
	}
	e := &LayerEntry{Path: p, UID: uint32(h.Uid), GID: uint32(h.Gid)}
	perm := PermFromUnix(uint32(h.Mode))
	switch h.Typeflag {
	case tar.TypeDir:
		e.Mode = fs.ModeDir | perm
	case tar.TypeReg, tar.TypeRegA:
		e.Mode = perm
		blob, size, err := store.Put(ctx, r)
		if err != nil {
			return nil, err
		}
		e.Blob, e.Size = blob, size
	case tar.TypeSymlink:
		if err := checkLayerLink(p, h.Linkname); err != nil {
			return nil, err
		}
		e.Mode = fs.ModeSymlink | 0o777
		e.Link = h.Linkname
	case tar.TypeLink:
		target, err := cleanLayerPath(h.Linkname)
		if err != nil {
			return nil, fmt.Errorf("hard link target %w", err)
		}
		e.Hardlink = target
	case tar.TypeChar:
		e.Mode = fs.ModeDevice | fs.ModeCharDevice | perm
		e.Rdev = mkdev(h.Devmajor, h.Devminor)
	case tar.TypeBlock:
		e.Mode = fs.ModeDevice | perm
		e.Rdev = mkdev(h.Devmajor, h.Devminor)
	case tar.TypeFifo:
		e.Mode = fs.ModeNamedPipe | perm
	case tar.TypeXGlobalHeader:
		return nil, nil
	default:
		return nil, fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	return e, nil
}

// mkdev packs a device number the way Linux's new_encode_dev does.
func mkdev(major, minor int64) uint64 {
	return uint64(minor&0xff) | uint64(major&0xfff)<<8 | uint64(minor&^0xff)<<12
}

// ApplyLayer applies a layer's entries (from ReadLayer) to t: whiteouts
// remove, opaque directories drop what lower layers had below them, the
// rest is added. name says which layer, for errors.
func ApplyLayer(t *Tree, name string, entries []LayerEntry, store *BlobStore) error {
	return ApplyLayerFrom(t, Origin{Kind: OriginBaseImage, Layer: name}, entries, store)
}

// ApplyLayerFrom is ApplyLayer giving every entry the layer adds origin
// (which names the layer by its Layer field).
func ApplyLayerFrom(t *Tree, origin Origin, entries []LayerEntry, store *BlobStore) error {
	thisLayer := map[string]bool{}
	for _, e := range entries {
		if err := applyEntry(t, e, store, thisLayer, origin); err != nil {
			return &LayerError{Layer: origin.Layer, Entry: e.Path, Err: err}
		}
		thisLayer[e.Path] = true
	}
	return nil
}

func applyEntry(t *Tree, e LayerEntry, store *BlobStore, thisLayer map[string]bool, origin Origin) error {
	switch {
	case e.Opaque:
		if d, ok := t.entries[Clean(e.Path)]; ok && d.IsDir() {
			t.pruneBelow(d.Path, thisLayer)
		}
		return nil
	case e.Whiteout:
		t.Remove(e.Path)
		return nil
	case e.Hardlink != "":
		target, ok := t.Get(e.Hardlink)
		if !ok || !target.IsRegular() {
			return fmt.Errorf("hard link to %s, which is not a regular file of the image", Quote(e.Hardlink))
		}
		link := *target
		link.Path = e.Path
		link.Origin = origin
		return t.Add(link)
	}
	te := Entry{Path: e.Path, Mode: e.Mode, UID: e.UID, GID: e.GID, Size: e.Size, Link: e.Link, Rdev: e.Rdev, Origin: origin}
	if e.Blob != "" {
		te.HostPath = store.Path(e.Blob)
	} else if te.IsRegular() {
		te.Data = []byte{}
	}
	return t.Add(te)
}

// pruneBelow removes what lies below dir except the entries in keep (and
// the directories that lead to them). It reports whether anything was kept.
func (t *Tree) pruneBelow(dir string, keep map[string]bool) bool {
	kept := false
	for _, name := range t.names(dir) {
		c := join(dir, name)
		below := t.entries[c].IsDir() && t.pruneBelow(c, keep)
		if keep[c] || below {
			kept = true
			continue
		}
		t.Remove(c)
	}
	return kept
}

// DefaultMaxLayerBytes bounds what the layers of one image may expand to: a hostile
// layer (a compression bomb, a sparse file declaring a terabyte) is
// refused instead of filling the disk.
const DefaultMaxLayerBytes = 64 << 30

// BlobStore is a content-addressed directory of file bodies: each file is
// named by the SHA-256 of its bytes.
type BlobStore struct {
	Dir   string
	Limit int64 // bytes Put may write in all; 0 means DefaultMaxLayerBytes
	used  int64
}

// Path returns where the blob called name is kept.
func (s *BlobStore) Path(name string) string { return filepath.Join(s.Dir, name) }

// Put copies r into the store and returns its name (sha256 hex) and size.
// The bytes go to a temporary file first, so a crash never leaves a blob
// whose name does not match its content.
func (s *BlobStore) Put(ctx context.Context, r io.Reader) (string, int64, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	limit := s.Limit
	if limit == 0 {
		limit = DefaultMaxLayerBytes
	}
	n, err := io.Copy(io.MultiWriter(f, h), ctxio.Reader(ctx, io.LimitReader(r, limit-s.used+1)))
	s.used += n
	if err == nil && s.used > limit {
		err = fmt.Errorf("the layer expands to more than %d bytes", limit)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	name := hex.EncodeToString(h.Sum(nil))
	if _, err := os.Stat(s.Path(name)); err == nil {
		return name, n, nil
	}
	if err := os.Chmod(f.Name(), 0o444); err != nil {
		return "", 0, err
	}
	return name, n, os.Rename(f.Name(), s.Path(name))
}
