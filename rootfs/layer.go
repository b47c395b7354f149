package rootfs

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Whiteout names of the OCI image layer spec.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// layerEntry is one tar header of a layer, validated and with its bytes
// moved into the content store. A layer is kept as a list of these, so a
// warm build applies a layer without reading its tar again.
type layerEntry struct {
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
	return fmt.Sprintf("layer %s: entry %q: %v", e.Layer, e.Entry, e.Err)
}

func (e *LayerError) Unwrap() error { return e.Err }

// ErrEscape is wrapped by errors for paths and links that would lead
// outside the root.
var ErrEscape = errors.New("escapes the root")

// cleanLayerPath turns a tar entry name into a tree path, refusing names
// that climb above the root ("../x", "a/../../x").
func cleanLayerPath(name string) (string, error) {
	if climbsAbove(0, name) {
		return "", fmt.Errorf("path %w", ErrEscape)
	}
	return Clean(name), nil
}

// checkLinkTarget refuses a relative symlink target that climbs above the
// root from the link's directory. Absolute targets stay inside by definition.
func checkLinkTarget(linkPath, target string) error {
	if target == "" {
		return errors.New("symlink with an empty target")
	}
	if strings.HasPrefix(target, "/") {
		return nil
	}
	depth := 0
	if dir := strings.Trim(path.Dir(linkPath), "/"); dir != "" {
		depth = strings.Count(dir, "/") + 1
	}
	if climbsAbove(depth, target) {
		return fmt.Errorf("symlink to %q %w", target, ErrEscape)
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

// readLayer validates the uncompressed layer tar r and stores its regular
// files in the content store, returning its entries in tar order.
func readLayer(r io.Reader, name string, store *blobStore) ([]layerEntry, error) {
	tr := tar.NewReader(r)
	var out []layerEntry
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, &LayerError{Layer: name, Err: err}
		}
		e, err := layerEntryFrom(h, tr, store, seen)
		if err != nil {
			return nil, &LayerError{Layer: name, Entry: h.Name, Err: err}
		}
		if e != nil {
			seen[e.Path] = true
			out = append(out, *e)
		}
	}
}

func layerEntryFrom(h *tar.Header, r io.Reader, store *blobStore, seen map[string]bool) (*layerEntry, error) {
	p, err := cleanLayerPath(h.Name)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(p)
	if base == opaqueWhiteout {
		return &layerEntry{Path: Clean(dir), Opaque: true}, nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return &layerEntry{Path: Clean(dir + strings.TrimPrefix(base, whiteoutPrefix)), Whiteout: true}, nil
	}
	e := &layerEntry{Path: p, UID: uint32(h.Uid), GID: uint32(h.Gid)}
	perm := PermFromUnix(uint32(h.Mode))
	switch h.Typeflag {
	case tar.TypeDir:
		e.Mode = fs.ModeDir | perm
	case tar.TypeReg, tar.TypeRegA:
		e.Mode = perm
		blob, size, err := store.put(r)
		if err != nil {
			return nil, err
		}
		e.Blob, e.Size = blob, size
	case tar.TypeSymlink:
		if err := checkLinkTarget(p, h.Linkname); err != nil {
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

// apply applies a layer's entries to t: whiteouts remove, opaque
// directories drop what lower layers had below them, the rest is added.
func apply(t *Tree, entries []layerEntry, store *blobStore) error {
	thisLayer := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.Opaque:
			for _, c := range t.below(e.Path) {
				if !thisLayer[c] {
					delete(t.entries, c)
				}
			}
		case e.Whiteout:
			t.Remove(e.Path)
		case e.Hardlink != "":
			target, ok := t.Get(e.Hardlink)
			if !ok || !target.IsRegular() {
				return fmt.Errorf("entry %q: hard link to %q, which is not a regular file of the image", e.Path, e.Hardlink)
			}
			link := *target
			link.Path = e.Path
			if err := t.Add(link); err != nil {
				return err
			}
		default:
			te := Entry{Path: e.Path, Mode: e.Mode, UID: e.UID, GID: e.GID, Size: e.Size, Link: e.Link, Rdev: e.Rdev}
			if e.Blob != "" {
				te.HostPath = store.path(e.Blob)
			} else if te.IsRegular() {
				te.Data = []byte{}
			}
			if err := t.Add(te); err != nil {
				return err
			}
		}
		thisLayer[e.Path] = true
	}
	return nil
}

// below lists the paths strictly below dir.
func (t *Tree) below(dir string) []string {
	prefix := Clean(dir) + "/"
	if prefix == "//" {
		prefix = "/"
	}
	var out []string
	for k := range t.entries {
		if k != "/" && strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// DefaultMaxLayerBytes bounds what the layers of one image may expand to: a hostile
// layer (a compression bomb, a sparse file declaring a terabyte) is
// refused instead of filling the disk.
const DefaultMaxLayerBytes = 64 << 30

// blobStore is a content-addressed directory of file bodies.
type blobStore struct {
	dir   string
	limit int64 // bytes the layers may write in all; 0 means DefaultMaxLayerBytes
	used  int64
}

func (s *blobStore) path(name string) string { return filepath.Join(s.dir, name) }

// put copies r into the store and returns its name (sha256 hex) and size.
// The bytes go to a temporary file first, so a crash never leaves a blob
// whose name does not match its content.
func (s *blobStore) put(r io.Reader) (string, int64, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	limit := s.limit
	if limit == 0 {
		limit = DefaultMaxLayerBytes
	}
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit-s.used+1))
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
	if _, err := os.Stat(s.path(name)); err == nil {
		return name, n, nil
	}
	if err := os.Chmod(f.Name(), 0o444); err != nil {
		return "", 0, err
	}
	return name, n, os.Rename(f.Name(), s.path(name))
}

// layerIndex is the cached, validated form of one layer.
type layerIndex struct {
	Entries []layerEntry `json:"entries"`
}

func loadLayerIndex(file string) ([]layerEntry, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, false
	}
	var idx layerIndex
	if json.Unmarshal(b, &idx) != nil {
		return nil, false
	}
	return idx.Entries, true
}

func saveLayerIndex(file string, entries []layerEntry) error {
	b, err := json.Marshal(layerIndex{Entries: entries})
	if err != nil {
		return err
	}
	return writeFileAtomic(file, b)
}

// writeFileAtomic writes b to a temporary file beside name and renames it.
func writeFileAtomic(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
