package baseimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// layerOf returns a layer of regular files (name → body) and symlinks
// (name → "->target").
func layerOf(t *testing.T, files ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		h := &tar.Header{Name: files[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[i+1]))}
		if target, ok := strings.CutPrefix(files[i+1], "->"); ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(files[i+1]))
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestFromImageCachesLayers(t *testing.T) {
	img := imageOf(t,
		layerOf(t, "etc/passwd", "root:x:0:0\n", "var/junk", "junk"),
		layerOf(t, "var/.wh.junk", "", "bin/app", "#!/bin/sh\n"),
	)
	cache := t.TempDir()
	ctx := context.Background()
	im, err := FromImage(ctx, "test", img, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := im.Tree.Get("/var/junk"); ok {
		t.Error("the whiteout of the second layer did not apply")
	}
	if _, ok := im.Tree.Get("/bin/app"); !ok || im.Config.Entrypoint[0] != "/bin/app" {
		t.Errorf("tree or config lost: %v", im.Config)
	}
	idx, _ := filepath.Glob(filepath.Join(cache, "layers", "sha256-*.json"))
	if len(idx) != 2 {
		t.Fatalf("%d layer indexes cached, want 2", len(idx))
	}
	for _, d := range []string{"layers", "blobs"} {
		fi, err := os.Stat(filepath.Join(cache, d))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("cache dir %s: %v, mode %v; want 0700", d, err, fi.Mode().Perm())
		}
	}
	// Warm: the cached index gives the tree without reading the layer;
	// prove it is the index that is read by editing it.
	edited := false
	for _, f := range idx {
		b, _ := os.ReadFile(f)
		if nb := bytes.Replace(b, []byte(`"/etc/passwd"`), []byte(`"/etc/cached"`), 1); !bytes.Equal(nb, b) {
			os.WriteFile(f, nb, 0o600)
			edited = true
		}
	}
	if !edited {
		t.Fatal("no cached index names /etc/passwd")
	}
	im2, err := FromImage(ctx, "test", img, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := im2.Tree.Get("/etc/cached"); !ok || im2.Tree.Len() != im.Tree.Len() {
		t.Errorf("warm pull did not come from the cached index (%d entries, cold had %d)", im2.Tree.Len(), im.Tree.Len())
	}
}

func TestHostileLayerNotCached(t *testing.T) {
	cache := t.TempDir()
	_, err := FromImage(context.Background(), "hostile", imageOf(t, layerOf(t, "a/link", "->../../etc/shadow")), WithCacheDir(cache))
	if !errors.Is(err, rootfs.ErrEscape) {
		t.Fatalf("got %v, want an escape error", err)
	}
	var le *rootfs.LayerError
	if !errors.As(err, &le) || le.Entry != "a/link" || !strings.HasPrefix(le.Layer, "sha256:") {
		t.Errorf("error %v does not name the layer and the entry", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "layers")); len(ents) != 0 {
		t.Errorf("a hostile layer was cached: %v", ents)
	}
}

// registryWith serves img at <host>/test/img:latest from an in-memory
// registry, through handler wrap.
func registryWith(t *testing.T, img v1.Image, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ref := u.Host + "/test/img:latest"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestPull(t *testing.T) {
	img := imageOf(t, layerOf(t, "bin/app", "#!/bin/sh\n"))
	ref := registryWith(t, img, func(h http.Handler) http.Handler { return h })
	im, err := Pull(context.Background(), ref, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if im.Digest != want.String() {
		t.Errorf("digest %s, want %s", im.Digest, want)
	}
	if _, ok := im.Tree.Get("/bin/app"); !ok {
		t.Error("the layer's file is missing")
	}
}

// TestPullCancelled: a cancel while a layer downloads stops the pull soon,
// with an error that says the context was cancelled.
func TestPullCancelled(t *testing.T) {
	big := make([]byte, 8<<20) // random, so that gzip cannot shrink it
	rand.Read(big)
	img := imageOf(t, layerOf(t, "big", string(big)))
	slow := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
				w = &slowWriter{w}
			}
			h.ServeHTTP(w, r)
		})
	}
	ref := registryWith(t, img, slow)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := Pull(ctx, ref, WithCacheDir(t.TempDir()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the pull went on for %v", d)
	}
	t.Logf("cancelled pull: %v", err)
}

// slowWriter sends a response in small pieces with pauses, as a slow
// registry would.
type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(20 * time.Millisecond)
		p = p[k:]
	}
	return n, nil
}

// Each file of an image names the image, its manifest digest and the
// layer (by diff id) that last wrote it, whether its layers come from the
// tar or from the cached index.
func TestFromImageRecordsOrigins(t *testing.T) {
	l1 := layerOf(t, "bin/app", "v1", "etc/conf", "c")
	l2 := layerOf(t, "bin/app", "v2")
	img := imageOf(t, l1, l2)
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for _, pass := range []string{"cold", "warm"} {
		im, err := FromImage(context.Background(), "reg.example/app:1", img, WithCacheDir(cache))
		if err != nil {
			t.Fatal(err)
		}
		for p, l := range map[string]v1.Layer{"/bin/app": l2, "/etc/conf": l1} {
			diffID, err := l.DiffID()
			if err != nil {
				t.Fatal(err)
			}
			want := rootfs.Origin{Kind: rootfs.OriginBaseImage, Image: "reg.example/app:1", ImageDigest: digest.String(), Layer: diffID.String()}
			if e, ok := im.Tree.Get(p); !ok || e.Origin != want {
				t.Errorf("%s %s: origin %+v, want %+v", pass, p, e.Origin, want)
			}
		}
	}
}
