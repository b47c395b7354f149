package kernel

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
)

// aliasDir is the cache's name index: one file per alias, named by the
// path-escaped alias and holding the bundle's digest.
const aliasDir = "names"

// install moves a finished stage directory into the cache under its
// digest. A bundle already there wins: the import was a no-op.
func install(ctx context.Context, cfg *config, stage string, desc Descriptor) (*Bundle, error) {
	sum, err := digest(ctx, stage)
	if err != nil {
		return nil, err
	}
	desc.Digest = sum
	// A fetched bundle comes with its descriptor; write it afresh with the checked digest.
	if err := os.Remove(filepath.Join(stage, DescriptorFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := writeJSON(filepath.Join(stage, DescriptorFile), desc); err != nil {
		return nil, err
	}
	final := filepath.Join(cfg.cacheDir, digestHex(sum))
	if b, err := Open(final); err == nil {
		return b, nil
	}
	if err := os.Rename(stage, final); err != nil {
		// Another import of the same bundle may have won the race.
		if b, openErr := Open(final); openErr == nil {
			return b, nil
		}
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	return Open(final)
}

func digestHex(digest string) string {
	return strings.TrimPrefix(digest, "sha256:")
}

// checkAlias refuses aliases that cannot be an index file name.
func checkAlias(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsRune(name, 0) || len(url.PathEscape(name)) > 200 {
		return fmt.Errorf("kernel bundle name %q: not usable as a name", name)
	}
	return nil
}

func aliasPath(cfg *config, name string) string {
	return filepath.Join(cfg.cacheDir, aliasDir, url.PathEscape(name))
}

// setAlias records that name resolves to digest (written to a temporary
// file and renamed, so readers see the old or the new digest).
func setAlias(cfg *config, name, digest string) error {
	if err := checkAlias(name); err != nil {
		return err
	}
	if err := cachedir.MkdirPrivate(filepath.Join(cfg.cacheDir, aliasDir)); err != nil {
		return fmt.Errorf("kernel cache: %w", err)
	}
	if err := atomicfile.WriteBytes(aliasPath(cfg, name), []byte(digest+"\n"), 0o644); err != nil {
		return fmt.Errorf("kernel cache: naming %s: %w", name, err)
	}
	return nil
}

// nameAsAsked records the name WithName gave (if any) for b, and returns b.
func nameAsAsked(cfg *config, b *Bundle) (*Bundle, error) {
	if cfg.name == "" {
		return b, nil
	}
	if err := setAlias(cfg, cfg.name, b.Desc.Digest); err != nil {
		return nil, err
	}
	return b, nil
}

// lookupAlias returns the bundle an alias names, or an ErrNotFound error.
func lookupAlias(cfg *config, name string) (*Bundle, error) {
	if checkAlias(name) != nil {
		return nil, ErrNotFound
	}
	data, err := os.ReadFile(aliasPath(cfg, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	digest := strings.TrimSpace(string(data))
	if !isDigestHex(digestHex(digest)) {
		return nil, fmt.Errorf("%s: bad digest %q", aliasPath(cfg, name), digest)
	}
	b, err := Open(filepath.Join(cfg.cacheDir, digestHex(digest)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound // the bundle was removed; the alias is stale
	}
	return b, err
}

func isDigestHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// lookupDigest finds a bundle by "sha256:<hex>", its hex, or a prefix of
// at least 12 hex digits that only one bundle has.
func lookupDigest(cfg *config, ref string) (*Bundle, error) {
	h := strings.ToLower(digestHex(ref))
	if len(h) < 12 || len(h) > 64 {
		return nil, ErrNotFound
	}
	if _, err := hex.DecodeString(h + strings.Repeat("0", len(h)%2)); err != nil {
		return nil, ErrNotFound
	}
	dirs, err := bundleDirs(cfg)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, d := range dirs {
		if strings.HasPrefix(d, h) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return nil, ErrNotFound
	case 1:
		return Open(filepath.Join(cfg.cacheDir, found[0]))
	}
	return nil, fmt.Errorf("kernel bundle %s: ambiguous, matches %s", ref, strings.Join(found, ", "))
}

// bundleDirs lists the cache's bundle directories (digest hex names), sorted.
func bundleDirs(cfg *config) ([]string, error) {
	entries, err := os.ReadDir(cfg.cacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && isDigestHex(e.Name()) {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

// List returns the descriptors of the cached bundles, sorted by name,
// release and digest.
func List(opts ...Option) ([]Descriptor, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	dirs, err := bundleDirs(cfg)
	if err != nil {
		return nil, err
	}
	descs := []Descriptor{}
	for _, d := range dirs {
		b, err := Open(filepath.Join(cfg.cacheDir, d))
		if err != nil {
			return nil, err
		}
		descs = append(descs, b.Desc)
	}
	sort.Slice(descs, func(i, j int) bool {
		a, b := descs[i], descs[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Release != b.Release {
			return a.Release < b.Release
		}
		return a.Digest < b.Digest
	})
	return descs, nil
}

// Aliases returns the cache's name index: alias → bundle digest. Aliases
// of removed bundles are left out.
func Aliases(opts ...Option) (map[string]string, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(cfg.cacheDir, aliasDir))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		name, err := url.PathUnescape(e.Name())
		if err != nil || strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			continue
		}
		b, err := lookupAlias(cfg, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[name] = b.Desc.Digest
	}
	return out, nil
}
