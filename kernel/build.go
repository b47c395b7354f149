package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
)

// Builder makes the bundle that a name stands for when neither the cache
// nor a registry has it: linux-mini, built from source by package kbuild.
// It returns ErrNotFound for a name it does not make. opts point it at
// Resolve's cache.
type Builder func(ctx context.Context, name string, opts ...Option) (*Bundle, error)

// WithBuilder lets Resolve build a bundle after the cache and the registry
// miss.
func WithBuilder(b Builder) Option {
	return func(c *config) { c.build = b }
}

// BuildInfo is bundle.json's record of a kernel built from source.
type BuildInfo struct {
	// Key is "sha256:<hex>" of the build's inputs (source, fragments,
	// compiler, timestamp): the cache finds the bundle again by it.
	Key string `json:"key"`
	// SourceVersion is the kernel source's package version (6.1.192-3),
	// or its kernelversion for a source directory.
	SourceVersion string `json:"sourceVersion"`
	// Base is the configuration the fragments are merged over (tinyconfig).
	Base      string     `json:"base"`
	Fragments []Fragment `json:"fragments"`
	// ConfigDigest is "sha256:<hex>" of the resolved .config (the bundle's
	// config file).
	ConfigDigest string `json:"configDigest"`
	Compiler     string `json:"compiler"`  // gcc --version's first line
	Timestamp    string `json:"timestamp"` // KBUILD_BUILD_TIMESTAMP
}

// Fragment is one configuration fragment of a build.
type Fragment struct {
	Name   string `json:"name"`
	Digest string `json:"digest"` // sha256:<hex> of its bytes
}

// Built is what a build step made for MakeBuild.
type Built struct {
	// Dir holds the kernel as Import reads a directory: bzImage and
	// config-<release> (and no modules: a built kernel has them built in).
	Dir     string
	Builtin []string // names of the modules built into the kernel
	Name    string   // bundle.json's name (linux-mini)
	Version string   // bundle.json's version: the source's
	Source  Source
	Build   BuildInfo
}

// buildsDir maps build keys to bundles: builds/<key hex> holds the digest.
const buildsDir = "builds"

// LookupBuild returns the bundle built from the inputs whose digest is
// key ("sha256:<hex>"), or an ErrNotFound error. With WithName it also
// records that name for it.
func LookupBuild(key string, opts ...Option) (*Bundle, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	b, err := lookupBuild(cfg, key)
	if err != nil {
		return nil, err
	}
	return nameAsAsked(cfg, b)
}

func lookupBuild(cfg *config, key string) (*Bundle, error) {
	h := digestHex(key)
	if !isDigestHex(h) {
		return nil, fmt.Errorf("build key %q: want sha256:<64 hex digits>", key)
	}
	data, err := os.ReadFile(filepath.Join(cfg.cacheDir, buildsDir, h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	d := strings.TrimSpace(string(data))
	if !isDigestHex(digestHex(d)) {
		return nil, fmt.Errorf("%s: bad digest %q", filepath.Join(cfg.cacheDir, buildsDir, h), d)
	}
	b, err := Open(filepath.Join(cfg.cacheDir, digestHex(d)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound // removed since
	}
	return b, err
}

// MakeBuild returns the bundle built from the inputs whose digest is key,
// running build when the cache has none: build gets a fresh, private work
// directory in the cache (removed afterwards, and on any failure or
// cancellation) and returns the kernel it made there. The bundle is
// assembled as Import assembles a directory, renamed into the cache, and
// recorded under key (and WithName's name). One process at a time builds
// a given key; another waits and then finds the bundle.
func MakeBuild(ctx context.Context, key string, build func(ctx context.Context, work string) (*Built, error), opts ...Option) (*Bundle, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.prepare(); err != nil {
		return nil, err
	}
	unlock, err := lockName(ctx, cfg, "build-"+digestHex(key))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if b, err := LookupBuild(key, opts...); !errors.Is(err, ErrNotFound) {
		return b, err
	}
	work, done, err := workDir(cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	out, err := build(ctx, work)
	if err != nil {
		return nil, err
	}
	stage := filepath.Join(work, "bundle")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return nil, err
	}
	info := out.Build
	info.Key = key
	desc := Descriptor{
		SchemaVersion: descriptorSchema,
		Name:          out.Name,
		Version:       out.Version,
		Source:        out.Source,
		Builtin:       append([]string{}, out.Builtin...),
		Build:         &info,
	}
	if err := assemble(ctx, cfg, out.Dir, stage, &desc); err != nil {
		return nil, fmt.Errorf("kernel build: %w", err)
	}
	b, err := install(ctx, cfg, stage, desc)
	if err != nil {
		return nil, err
	}
	if err := cachedir.MkdirPrivate(filepath.Join(cfg.cacheDir, buildsDir)); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(cfg.cacheDir, buildsDir, digestHex(key)), []byte(b.Desc.Digest+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("kernel cache: recording build %s: %w", key, err)
	}
	return nameAsAsked(cfg, b)
}

// microvmOptions are what a kernel needs, built in, to boot a uni image on
// QEMU's microvm machine: the PVH entry, virtio over MMIO for the disk and
// the NIC, the serial console, ACPI (power-off and device discovery) and
// the rootfs's filesystem.
func microvmOptions() []string {
	return []string{
		"CONFIG_PVH", "CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET",
		"CONFIG_SERIAL_8250_CONSOLE", "CONFIG_SERIAL_8250_PNP", "CONFIG_ACPI", "CONFIG_SQUASHFS",
	}
}

// bootsOnMicrovm reads a kernel's .config and tells whether it has
// everything microvmOptions names built in.
func bootsOnMicrovm(configPath string) (bool, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return false, err
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && v == "y" {
			set[k] = true
		}
	}
	for _, o := range microvmOptions() {
		if !set[o] {
			return false, nil
		}
	}
	return true, nil
}
