package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBuild is a build step that writes a (fake) kernel and its config,
// counting its calls; fail makes it fail after writing.
type fakeBuild struct {
	calls int
	fail  error
}

func (f *fakeBuild) run(_ context.Context, work string) (*Built, error) {
	f.calls++
	dir := filepath.Join(work, "kernel")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bzImage"), fakeBzImage("6.1.0-mini", 0x1000000, 15<<20, 1<<10), 0o644); err != nil {
		return nil, err
	}
	config := "CONFIG_PVH=y\nCONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_BLK=y\nCONFIG_VIRTIO_NET=y\nCONFIG_SERIAL_8250_CONSOLE=y\nCONFIG_SERIAL_8250_PNP=y\nCONFIG_ACPI=y\nCONFIG_SQUASHFS=y\n"
	if err := os.WriteFile(filepath.Join(dir, ".config"), []byte(config), 0o644); err != nil {
		return nil, err
	}
	if f.fail != nil {
		return nil, f.fail
	}
	return &Built{
		Dir: dir, Builtin: []string{"squashfs", "virtio_blk"}, Name: "linux-mini", Version: "6.1.0-1",
		Source: Source{Kind: "build", Package: "linux-source-6.1", Version: "6.1.0-1"},
		Build:  BuildInfo{SourceVersion: "6.1.0-1", Base: "tinyconfig"},
	}, nil
}

const testKey = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestMakeBuildCachesByKey(t *testing.T) {
	needImportTools(t)
	cache := filepath.Join(t.TempDir(), "kernels")
	ctx := context.Background()
	if _, err := LookupBuild(testKey, WithCacheDir(cache)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty cache: %v", err)
	}
	fb := &fakeBuild{}
	b, err := MakeBuild(ctx, testKey, fb.run, WithCacheDir(cache), WithName("linux-mini"))
	if err != nil {
		t.Fatal(err)
	}
	d := b.Desc
	if d.Build == nil || d.Build.Key != testKey || !d.Microvm || d.Modules != 0 || strings.Join(d.Builtin, ",") != "squashfs,virtio_blk" {
		t.Fatalf("descriptor %+v (build %+v)", d, d.Build)
	}
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, ConfigFile)); err != nil {
		t.Errorf("the bundle lacks its config: %v", err)
	}
	again, err := MakeBuild(ctx, testKey, fb.run, WithCacheDir(cache))
	if err != nil || again.Desc.Digest != d.Digest || fb.calls != 1 {
		t.Fatalf("second MakeBuild: %v, digest %s, %d builds; want the cached bundle and one build", err, again.Desc.Digest, fb.calls)
	}
	named, err := Resolve(ctx, "linux-mini", WithCacheDir(cache), WithoutDistro())
	if err != nil || named.Desc.Digest != d.Digest {
		t.Fatalf("Resolve(linux-mini): %v", err)
	}
	lic, err := os.ReadFile(filepath.Join(b.Dir, LicenseFile))
	if err != nil || !strings.Contains(string(lic), "uni built them from the kernel source") {
		t.Errorf("LICENSE: %q, %v", lic, err)
	}
}

func TestMakeBuildFailureLeavesNothing(t *testing.T) {
	needImportTools(t)
	cache := filepath.Join(t.TempDir(), "kernels")
	boom := errors.New("make: *** [bzImage] Error 2")
	_, err := MakeBuild(context.Background(), testKey, (&fakeBuild{fail: boom}).run, WithCacheDir(cache), WithName("linux-mini"))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the build's error", err)
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if e.Name() != lockDir {
			t.Errorf("cache holds %s after a failed build", e.Name())
		}
	}
}

func TestResolveAsksTheBuilderLast(t *testing.T) {
	needImportTools(t)
	cache := filepath.Join(t.TempDir(), "kernels")
	var asked []string
	builder := func(ctx context.Context, name string, opts ...Option) (*Bundle, error) {
		asked = append(asked, name)
		if name != "linux-mini" {
			return nil, ErrNotFound
		}
		return MakeBuild(ctx, testKey, (&fakeBuild{}).run, append(opts, WithName(name))...)
	}
	b, err := Resolve(context.Background(), "linux-mini", WithCacheDir(cache), WithoutDistro(), WithBuilder(builder))
	if err != nil || b.Desc.Build == nil {
		t.Fatalf("Resolve(linux-mini) with a builder: %v", err)
	}
	if _, err := Resolve(context.Background(), "linux-mini", WithCacheDir(cache), WithoutDistro(), WithBuilder(builder)); err != nil || len(asked) != 1 {
		t.Fatalf("second Resolve: %v, builder asked %v; want the cache", err, asked)
	}
	_, err = Resolve(context.Background(), "other", WithCacheDir(cache), WithoutDistro(), WithBuilder(builder))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("a name the builder does not make: %v", err)
	}
}
