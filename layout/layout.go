// Package layout reads an image layout (docs/image-layout.md): the
// directory of kernel, initrd, rootfs.img, config.json and an optional
// disk.img that a build writes and that `uni run`, the OCI push and the
// Packer builder take. Everything in a layout is untrusted: Open accepts a
// directory only by its files and config.json only against a strict schema,
// and Verify checks the files against what config.json records before
// anything boots.
package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// MaxConfigBytes bounds config.json. A typical one is a kilobyte; one of
// an image that EXPOSEs every tcp and udp port is about 7 MiB.
const MaxConfigBytes = 8 << 20

var (
	// ErrNotLayout is wrapped by Open's error for a directory that lacks
	// the files of an image layout.
	ErrNotLayout = errors.New("not an image layout")
	// ErrMismatch is wrapped by Verify's errors for a file that differs from
	// what config.json records.
	ErrMismatch = errors.New("does not match config.json")
)

// Required are the files every image layout holds.
var Required = []string{spec.ConfigFile, spec.KernelFile, spec.InitrdFile, spec.RootfsFile}

// Optional are the files a layout may hold besides the required ones.
var Optional = []string{spec.DiskFile, spec.SBOMFile}

// Layout is an opened image layout whose config.json passed the schema.
type Layout struct {
	dir      string
	config   spec.ImageConfig
	verified bool
}

// Open recognises the image layout in dir by its files (config.json,
// kernel, initrd and rootfs.img as regular files, disk.img and sbom.spdx.json optional; no
// symlinks, which could point QEMU at a host file) and reads config.json
// with ParseConfig. It reads nothing else: Verify does.
func Open(dir string) (*Layout, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w: not a directory", dir, ErrNotLayout)
	}
	var missing []string
	for _, name := range Required {
		ok, err := regularFile(filepath.Join(abs, name))
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %w: it lacks %s (a layout holds %s)", dir, ErrNotLayout, strings.Join(missing, ", "), strings.Join(Required, ", "))
	}
	for _, name := range Optional {
		if _, err := regularFile(filepath.Join(abs, name)); err != nil {
			return nil, err
		}
	}
	cfg, err := readConfig(filepath.Join(abs, spec.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return &Layout{dir: abs, config: *cfg}, nil
}

// regularFile reports whether p is a regular file; a symlink or another
// type there is an error, a missing file is false.
func regularFile(p string) (bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s: %w: a %s, not a regular file", p, ErrNotLayout, kind(fi.Mode()))
	}
	return true, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

func readConfig(p string) (*spec.ImageConfig, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.ConfigFile, err)
	}
	return ParseConfig(data)
}

// ParseConfig reads config.json strictly: at most MaxConfigBytes, one JSON
// object with no unknown and no repeated fields, nothing after it, and
// every field valid (spec.ImageConfig.Validate). Errors name the field.
// The retired sbom field of older layouts is accepted and dropped
// (configFile).
func ParseConfig(data []byte) (*spec.ImageConfig, error) {
	fail := func(err error) (*spec.ImageConfig, error) {
		return nil, fmt.Errorf("%s: %w", spec.ConfigFile, err)
	}
	if len(data) > MaxConfigBytes {
		return fail(fmt.Errorf("more than %d bytes", MaxConfigBytes))
	}
	if err := checkNoRepeatedKeys(data); err != nil {
		return fail(err)
	}
	var file configFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(errors.New("data after the JSON object"))
	}
	if err := file.ImageConfig.Validate(); err != nil {
		return fail(err)
	}
	if r := file.RetiredSBOM; r != nil {
		if err := spec.CheckDigest("sbom.digest", r.Digest); err != nil {
			return fail(err)
		}
		if r.Size <= 0 {
			return fail(&spec.FieldError{Field: "sbom.size", Msg: fmt.Sprintf("%d is not a size", r.Size)})
		}
	}
	return &file.ImageConfig, nil
}

// configFile is config.json as ParseConfig reads it: the image config, and
// the sbom field that uni wrote before sbom.spdx.json became a description
// of the image rather than one of its files (the SBOM now names the rootfs
// digest; Verify checks that). Layouts and pushed images from then still
// hold it, and their config.json cannot be rewritten without changing the
// artifact's digest, so it is read, checked for its old shape, and ignored;
// any other unknown field is still refused.
type configFile struct {
	spec.ImageConfig
	RetiredSBOM *spec.FileRef `json:"sbom"`
}

// checkNoRepeatedKeys refuses an object that names a field twice. Go's
// decoder would keep the last one, matched without regard to case, where
// another reader may keep the first: one file must mean one config.
func checkNoRepeatedKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		isKey  bool // the next token in this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.isKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].isKey = true
				}
				continue
			}
			key := strings.ToLower(tok.(string))
			if top.keys[key] {
				return fmt.Errorf("field %q appears twice", tok)
			}
			top.keys[key] = true
			top.isKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, isKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object expects a key next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].isKey = true
		}
	}
}

// Dir is the layout's directory, absolute.
func (l *Layout) Dir() string { return l.dir }

// Path is the path of one of the layout's files (spec.KernelFile, …).
func (l *Layout) Path(name string) string { return filepath.Join(l.dir, name) }

// Config is config.json, validated. The caller gets a deep copy.
func (l *Layout) Config() spec.ImageConfig {
	c := l.config
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Env = slices.Clone(c.Env)
	c.ExposedPorts = slices.Clone(c.ExposedPorts)
	c.BootModes = slices.Clone(c.BootModes)
	c.Labels = maps.Clone(c.Labels)
	if c.User != nil {
		u := *c.User
		c.User = &u
	}
	for _, ref := range []**spec.FileRef{&c.KernelFile, &c.Initrd, &c.Disk} {
		if *ref != nil {
			r := **ref
			*ref = &r
		}
	}
	return c
}

// HasDisk reports whether the layout holds disk.img as a regular file now
// (one may have been written since Open).
func (l *Layout) HasDisk() bool {
	ok, err := regularFile(l.Path(spec.DiskFile))
	return ok && err == nil
}

// HasSBOM reports whether the layout holds sbom.spdx.json as a regular file.
func (l *Layout) HasSBOM() bool {
	ok, err := regularFile(l.Path(spec.SBOMFile))
	return ok && err == nil
}

// Verified reports whether Verify has accepted the layout.
func (l *Layout) Verified() bool { return l.verified }
