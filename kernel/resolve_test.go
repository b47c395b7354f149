package kernel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestResolveDefaultFromDistro runs the whole path a first `uni run` takes
// on a fresh host: empty cache, apt-get download of the cloud kernel, import.
func TestResolveDefaultFromDistro(t *testing.T) {
	testtool.NeedDownload(t, "the distribution kernel (about 27 MB)")
	needImportTools(t)
	testtool.Need(t, "apt-get", "apt-cache")
	cache := t.TempDir()
	var log bytes.Buffer
	b, err := Resolve(context.Background(), "", WithCacheDir(cache), WithProgress(&log))
	if err != nil {
		t.Fatal(err)
	}
	aliases, err := Aliases(WithCacheDir(cache))
	if err != nil || aliases[DefaultName] != b.Desc.Digest {
		t.Errorf("after Resolve: aliases %v, %v; bundle %s", aliases, err, b.Desc.Digest)
	}
	t.Logf("progress:\n%s", log.String())
	for _, want := range []string{"downloading linux-image-", "downloaded linux-image-", "unpacking linux-image-", "unpacked linux-image-"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left in the cache: %v", leftovers)
	}
}

func TestResolveMisses(t *testing.T) {
	cache := t.TempDir()
	ctx := context.Background()
	for _, name := range []string{DefaultName, "custom", "./no/such/dir", "/no/such.deb", "sha256:0123456789abcdef"} {
		if _, err := Resolve(ctx, name, WithCacheDir(cache), WithoutDistro()); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) on an empty cache: %v, want ErrNotFound", name, err)
		}
	}
	fetched := ""
	fetch := func(ctx context.Context, ref, dir string) error {
		fetched = ref
		return ErrNotFound
	}
	if _, err := Resolve(ctx, "registry.example/uniforge/kernel:6.1", WithCacheDir(cache), WithFetcher(fetch)); !errors.Is(err, ErrNotFound) || fetched != "registry.example/uniforge/kernel:6.1" {
		t.Errorf("registry miss: %v (fetcher asked for %q)", err, fetched)
	}
}

// writeFakeBundle writes a small bundle (not bootable) with a correct digest.
func writeFakeBundle(t *testing.T, dir string) Descriptor {
	t.Helper()
	files := map[string]string{KernelFile: "not a kernel", ModuleIndexFile: `{"kernelRelease":"9.9","modules":[]}` + "\n", "boot/efi/BOOTX64.EFI": "MZ"}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digest, err := Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := Descriptor{SchemaVersion: descriptorSchema, Name: "fake", Release: "9.9", Digest: digest, Builtin: []string{}}
	if err := writeJSON(filepath.Join(dir, DescriptorFile), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestResolveThroughFetcher(t *testing.T) {
	ctx := context.Background()
	const ref = "registry.example/uniforge/kernel:9.9"
	var want Descriptor
	fetch := func(ctx context.Context, got, dir string) error {
		if got != ref {
			return ErrNotFound
		}
		want = writeFakeBundle(t, dir)
		return nil
	}
	cache := t.TempDir()
	b, err := Resolve(ctx, ref, WithCacheDir(cache), WithFetcher(fetch))
	if err != nil {
		t.Fatal(err)
	}
	if b.Desc.Digest != want.Digest || filepath.Base(b.Dir) != digestHex(want.Digest) {
		t.Errorf("fetched bundle %s in %s, want %s", b.Desc.Digest, b.Dir, want.Digest)
	}
	// The second time the cache answers, not the registry.
	again, err := Resolve(ctx, ref, WithCacheDir(cache), WithFetcher(func(context.Context, string, string) error {
		return errors.New("registry asked twice")
	}))
	if err != nil || again.Desc.Digest != want.Digest {
		t.Errorf("second Resolve: %v", err)
	}

	tamper := func(ctx context.Context, _, dir string) error {
		writeFakeBundle(t, dir)
		return os.WriteFile(filepath.Join(dir, KernelFile), []byte("swapped"), 0o644)
	}
	if _, err := Resolve(ctx, "other:1", WithCacheDir(t.TempDir()), WithFetcher(tamper)); err == nil {
		t.Error("a bundle whose files do not match its digest was accepted")
	}
}
