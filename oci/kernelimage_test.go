package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/uniforge/packer-plugin-unikernel/internal/testbundle"
	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

// testKernelBundle is the test bundle with a module below modules/ (an
// executable file, to carry a 0755 mode) and its digest recomputed, so
// the image holds nested directories too.
func testKernelBundle(t *testing.T) *kernel.Bundle {
	t.Helper()
	b := testbundle.Bundle(t)
	mod := filepath.Join(b.Dir, kernel.ModulesDir, "kernel", "drivers", "test", "fake.ko")
	if err := os.MkdirAll(filepath.Dir(mod), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mod, bytes.Repeat([]byte("module "), 1000), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := kernel.Digest(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	b.Desc.Digest = sum
	data, err := json.MarshalIndent(b.Desc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, kernel.DescriptorFile), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKernelBundleImage: a bundle pushed to a real registry is an ordinary,
// reproducible image; fetched into an empty cache through kernel.Resolve it
// is the same bundle, and a second resolve asks the registry nothing.
func TestKernelBundleImage(t *testing.T) {
	ctx := context.Background()
	b := testKernelBundle(t)
	addr, _ := testregistry.Start(t)
	ref := addr + "/uniforge/kernel:" + b.Desc.Release

	p1, err := PushKernelBundle(ctx, b, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !p1.Uploaded {
		t.Error("the first push sent no layer")
	}
	// File times do not matter; the same bundle pushed again is the same image.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	filepath.WalkDir(b.Dir, func(p string, _ os.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	p2, err := PushKernelBundle(ctx, b, ref)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Manifest != p1.Manifest || p2.Uploaded {
		t.Fatalf("second push: manifest %s (first %s), uploaded %v", p2.Manifest, p1.Manifest, p2.Uploaded)
	}
	// Another SOURCE_DATE_EPOCH is another image.
	p3, err := PushKernelBundle(ctx, b, addr+"/uniforge/kernel:epoch", WithSourceDateEpoch(1700000000))
	if err != nil {
		t.Fatal(err)
	}
	if p3.Manifest == p1.Manifest {
		t.Error("another SOURCE_DATE_EPOCH gave the same manifest")
	}

	checkKernelImage(t, ref, b)

	cache := t.TempDir()
	rt := &countingTransport{}
	fetcher := KernelFetcher(WithTransport(rt))
	got, err := kernel.Resolve(ctx, ref, kernel.WithCacheDir(cache), kernel.WithFetcher(fetcher), kernel.WithoutDistro())
	if err != nil {
		t.Fatal(err)
	}
	if got.Desc.Digest != b.Desc.Digest || got.Desc.Release != b.Desc.Release {
		t.Fatalf("fetched bundle %s %s, pushed %s %s", got.Desc.Release, got.Desc.Digest, b.Desc.Release, b.Desc.Digest)
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(got.Dir, "modules/kernel/drivers/test/fake.ko")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("fetched module: %v, %v", fi, err)
	}
	if rt.count() == 0 {
		t.Fatal("the fetch made no request")
	}
	aliases, err := kernel.Aliases(kernel.WithCacheDir(cache))
	if err != nil || aliases[ref] != b.Desc.Digest {
		t.Fatalf("aliases %v, %v: want %s → %s", aliases, err, ref, b.Desc.Digest)
	}
	rt.reset()
	again, err := kernel.Resolve(ctx, ref, kernel.WithCacheDir(cache), kernel.WithFetcher(fetcher), kernel.WithoutDistro())
	if err != nil || again.Dir != got.Dir {
		t.Fatalf("second resolve: %v, %v", again, err)
	}
	if n := rt.count(); n != 0 {
		t.Fatalf("the second resolve made %d requests, want 0 (served from the cache)", n)
	}
	// The fetched bundle, bundle.json rewritten by the cache, pushes as the same image.
	p4, err := PushKernelBundle(ctx, got, addr+"/other/kernel:again")
	if err != nil {
		t.Fatal(err)
	}
	if p4.Manifest != p1.Manifest {
		t.Fatalf("the fetched bundle pushes as %s, the original as %s", p4.Manifest, p1.Manifest)
	}

	// A tag the registry lacks is not found, and says so.
	_, err = kernel.Resolve(ctx, addr+"/uniforge/kernel:nope", kernel.WithCacheDir(cache), kernel.WithFetcher(fetcher), kernel.WithoutDistro())
	if !errors.Is(err, kernel.ErrNotFound) || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Fatalf("missing tag: %v", err)
	}
	// A name that is no reference does not reach the fetcher's registry.
	rt.reset()
	if _, err := kernel.Resolve(ctx, "mine", kernel.WithCacheDir(cache), kernel.WithFetcher(fetcher), kernel.WithoutDistro()); !errors.Is(err, kernel.ErrNotFound) || rt.count() != 0 {
		t.Fatalf("a plain name: %v, %d requests", err, rt.count())
	}
}

// checkKernelImage reads the pushed image back with go-containerregistry:
// its config, labels and the layer's entries.
func checkKernelImage(t *testing.T, ref string, b *kernel.Bundle) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("manifest %+v", m)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	want := map[string]string{LabelKernelBundleDigest: b.Desc.Digest, LabelKernelBundleRelease: b.Desc.Release, LabelKernelBundleVersion: b.Desc.Version}
	for k, v := range want {
		if cf.Config.Labels[k] != v || m.Annotations[k] != v {
			t.Errorf("%s: label %q, annotation %q, want %q", k, cf.Config.Labels[k], m.Annotations[k], v)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner %d:%d %q, time %s", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
		wantMode := int64(0o644)
		if h.Typeflag == tar.TypeDir || h.Name == "modules/kernel/drivers/test/fake.ko" {
			wantMode = 0o755
		}
		if h.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, wantMode)
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			disk, err := os.ReadFile(filepath.Join(b.Dir, h.Name))
			if err != nil || !bytes.Equal(data, disk) {
				t.Errorf("%s: layer and bundle differ (%v)", h.Name, err)
			}
		}
	}
	wantNames := "LICENSE boot/ boot/bios/ boot/bios/boot.img boot/bios/core.img boot/efi/ boot/efi/BOOTX64.EFI bundle.json kernel " +
		"modules/ modules/kernel/ modules/kernel/drivers/ modules/kernel/drivers/test/ modules/kernel/drivers/test/fake.ko modules.json"
	if got := strings.Join(names, " "); got != wantNames {
		t.Errorf("layer entries:\n%s\nwant\n%s", got, wantNames)
	}
}

// TestKernelBundleFetchCorrupt: a layer blob damaged in the registry's
// storage is refused, and the cache is left as it was.
func TestKernelBundleFetchCorrupt(t *testing.T) {
	ctx := context.Background()
	b := testKernelBundle(t)
	for _, c := range []struct {
		name   string
		damage func([]byte) []byte
		want   error // nil: any error (a flipped byte may break the gzip or tar before the digest is known)
	}{
		{"flipped-byte", func(d []byte) []byte { d[len(d)/2] ^= 0xff; return d }, nil},
		{"flipped-last-byte", func(d []byte) []byte { d[len(d)-1] ^= 0xff; return d }, nil},
		{"trailing-bytes", func(d []byte) []byte { return append(d, "more"...) }, ErrDigest},
		{"truncated", func(d []byte) []byte { return d[:len(d)-10] }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, storage := testregistry.Start(t)
			ref := addr + "/uniforge/kernel:corrupt"
			p, err := PushKernelBundle(ctx, b, ref)
			if err != nil {
				t.Fatal(err)
			}
			blob := testregistry.BlobPath(storage, p.Layer.Hex)
			data, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(blob, c.damage(data), 0o644); err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			_, err = kernel.Resolve(ctx, ref, kernel.WithCacheDir(cache), kernel.WithFetcher(KernelFetcher()), kernel.WithoutDistro())
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
			checkEmptyCache(t, cache)
		})
	}
}

// checkEmptyCache fails unless the kernel cache holds no bundle, no name
// and no work directory.
func checkEmptyCache(t *testing.T, cache string) {
	t.Helper()
	descs, err := kernel.List(kernel.WithCacheDir(cache))
	if err != nil || len(descs) != 0 {
		t.Errorf("cache holds %v (%v)", descs, err)
	}
	aliases, err := kernel.Aliases(kernel.WithCacheDir(cache))
	if err != nil || len(aliases) != 0 {
		t.Errorf("cache names %v (%v)", aliases, err)
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if e.Name() != "locks" && e.Name() != "names" {
			t.Errorf("cache holds %s", e.Name())
		}
	}
}

// pushRawBundleImage pushes an image of one layer with the bundle labels.
func pushRawBundleImage(t *testing.T, ref string, layer []byte, digestLabel string) {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{}
	if digestLabel != "" {
		cf.Config.Labels[LabelKernelBundleDigest] = digestLabel
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// TestKernelBundleFetchHostile: layers that would write outside the
// bundle, link out of it, claim absurd sizes or hold other files are
// refused, write nothing outside the stage, and leave the cache empty.
func TestKernelBundleFetchHostile(t *testing.T) {
	ctx := context.Background()
	b := testKernelBundle(t)
	addr, _ := testregistry.Start(t)
	desc, err := os.ReadFile(filepath.Join(b.Dir, kernel.DescriptorFile))
	if err != nil {
		t.Fatal(err)
	}
	kernelBytes, err := os.ReadFile(b.KernelPath())
	if err != nil {
		t.Fatal(err)
	}
	okFiles := []tarEntry{{name: "bundle.json", body: desc}, {name: "kernel", body: kernelBytes}}
	cases := []struct {
		name    string
		entries []tarEntry
		label   string
		want    error
	}{
		{"dotdot", append(okFiles, tarEntry{name: "../escaped", body: []byte("x")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"dotdot-inside", append(okFiles, tarEntry{name: "modules/../../escaped", body: []byte("x")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"absolute", append(okFiles, tarEntry{name: "/tmp/escaped", body: []byte("x")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"symlink-out", append(okFiles, tarEntry{name: "modules", typ: tar.TypeSymlink, link: "/tmp"}, tarEntry{name: "modules/escaped", body: []byte("x")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"symlink-file", append(okFiles, tarEntry{name: "boot/efi/BOOTX64.EFI", typ: tar.TypeSymlink, link: "../../../../etc/passwd"}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"hardlink", append(okFiles, tarEntry{name: "LICENSE", typ: tar.TypeLink, link: "/etc/passwd"}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"device", append(okFiles, tarEntry{name: "boot/null", typ: tar.TypeChar}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"absurd-size", append(okFiles, tarEntry{name: "modules/huge.ko", body: []byte("x"), size: 1 << 40}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"big-descriptor", []tarEntry{{name: "bundle.json", body: []byte("{"), size: MaxKernelBundleMeta + 1}}, b.Desc.Digest, ErrInvalidKernelBundle},
		{"other-file", append(okFiles, tarEntry{name: "etc/passwd", body: []byte("root::0:0::/:/bin/sh\n")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"twice", append(okFiles, tarEntry{name: "kernel", body: []byte("again")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"whiteout", append(okFiles, tarEntry{name: "boot/.wh.bios", body: []byte("")}), b.Desc.Digest, ErrInvalidKernelBundle},
		{"no-label", okFiles, "", ErrNotKernelBundle},
		{"label-mismatch", okFiles, "sha256:" + strings.Repeat("0", 64), ErrInvalidKernelBundle},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := addr + "/hostile/" + c.name + ":1"
			pushRawBundleImage(t, ref, tarBytes(t, c.entries...), c.label)
			cache := t.TempDir()
			_, err := kernel.Resolve(ctx, ref, kernel.WithCacheDir(cache), kernel.WithFetcher(KernelFetcher()), kernel.WithoutDistro())
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
			checkEmptyCache(t, cache)
		})
	}
}

// TestBundleExtractStaysInside: whatever a refused layer held, nothing
// was written beside the directory it was extracted into.
func TestBundleExtractStaysInside(t *testing.T) {
	for _, entries := range [][]tarEntry{
		{{name: "../escaped", body: []byte("x")}},
		{{name: "modules/../../escaped", body: []byte("x")}},
		{{name: "./../escaped", body: []byte("x")}},
		{{name: "modules", typ: tar.TypeSymlink, link: ".."}, {name: "modules/escaped", body: []byte("x")}},
		{{name: "boot/x", typ: tar.TypeLink, link: "../escaped"}},
	} {
		parent := t.TempDir()
		dir := filepath.Join(parent, "bundle")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		x := &bundleExtract{dir: dir}
		if err := x.layer(bytes.NewReader(tarBytes(t, entries...))); !errors.Is(err, ErrInvalidKernelBundle) {
			t.Errorf("%v: got %v", entries, err)
		}
		if got, _ := os.ReadDir(parent); len(got) != 1 {
			t.Errorf("%v: the parent holds %v", entries, got)
		}
	}
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests = 0
}
