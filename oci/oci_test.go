package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func testFiles() []layout.File {
	h := func(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }
	return []layout.File{
		{Name: spec.ConfigFile, Size: 100, Digest: h('a')},
		{Name: spec.KernelFile, Size: 1 << 20, Digest: h('b')},
		{Name: spec.InitrdFile, Size: 1 << 19, Digest: h('c')},
		{Name: spec.RootfsFile, Size: 1 << 22, Digest: h('d')},
		{Name: spec.DiskFile, Size: 1 << 23, Digest: h('e')},
	}
}

func TestNewArtifactReproducible(t *testing.T) {
	cfg := layouttest.Config()
	cfg.Build.SourceDateEpoch = 1700000000
	cfg.Labels = map[string]string{AnnotationVersion: "1.2.3", AnnotationSource: "https://example.com/app", "other": "x"}
	a1, err := NewArtifact(cfg, testFiles(), false)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := NewArtifact(cfg, testFiles(), false)
	if err != nil {
		t.Fatal(err)
	}
	if a1.ManifestDesc.Digest != a2.ManifestDesc.Digest || a1.IndexDesc.Digest != a2.IndexDesc.Digest {
		t.Fatalf("two builds of one layout differ: %s %s / %s %s", a1.ManifestDesc.Digest, a2.ManifestDesc.Digest, a1.IndexDesc.Digest, a2.IndexDesc.Digest)
	}
	cfg.Build.SourceDateEpoch++
	a3, err := NewArtifact(cfg, testFiles(), false)
	if err != nil {
		t.Fatal(err)
	}
	if a3.ManifestDesc.Digest == a1.ManifestDesc.Digest {
		t.Fatal("another SOURCE_DATE_EPOCH gave the same manifest digest")
	}
	var m v1.Manifest
	if err := json.Unmarshal(a1.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactType || m.Config.MediaType != ConfigMediaType {
		t.Errorf("artifactType %q config %q", m.ArtifactType, m.Config.MediaType)
	}
	want := map[string]string{
		AnnotationCreated: "2023-11-14T22:13:20Z", AnnotationVersion: "1.2.3", AnnotationSource: "https://example.com/app",
		AnnotationKernelRelease: "6.1.0-test", AnnotationKernelDigest: cfg.Kernel.Digest,
	}
	if len(m.Annotations) != len(want) {
		t.Errorf("annotations %v, want %v", m.Annotations, want)
	}
	for k, v := range want {
		if m.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	var titles []string
	for _, l := range m.Layers {
		titles = append(titles, l.Annotations[AnnotationTitle])
		if string(l.MediaType) != MediaTypeOf(l.Annotations[AnnotationTitle]) {
			t.Errorf("layer %s has media type %s", l.Annotations[AnnotationTitle], l.MediaType)
		}
	}
	if got := strings.Join(titles, ","); got != "config.json,kernel,initrd,rootfs.img" {
		t.Errorf("titles %s (disk.img only with --disk)", got)
	}
	withDisk, err := NewArtifact(cfg, testFiles(), true)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(withDisk.Blobs); n != 5 {
		t.Errorf("with disk: %d blobs, want 5", n)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(a1.Index, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != a1.ManifestDesc.Digest || idx.Manifests[0].Platform.String() != "linux/amd64" {
		t.Errorf("index %s", a1.Index)
	}
	// The manifest we write is one we read back.
	_, files, err := ParseManifest(a1.Manifest, DefaultMaxFileBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || files[3].Name != spec.RootfsFile || files[3].Desc.Size != 1<<22 {
		t.Errorf("parsed %+v", files)
	}
}

func TestCheckTitle(t *testing.T) {
	for _, ok := range []string{"kernel", "initrd", "rootfs.img", "config.json", "disk.img"} {
		if err := CheckTitle(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../../x", "/etc/passwd", "a/kernel", `..\kernel`, "kernel/", "sbom.spdx.json", "Kernel", "kernel\x00"} {
		if err := CheckTitle(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}

// manifestWith is our manifest for testFiles with edit applied.
func manifestWith(t *testing.T, edit func(m *v1.Manifest)) []byte {
	t.Helper()
	a, err := NewArtifact(layouttest.Config(), testFiles(), false)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseManifestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *v1.Manifest)
		want error
		msg  string
	}{
		{"escaping title", func(m *v1.Manifest) { m.Layers[1].Annotations[AnnotationTitle] = "../../x" }, ErrInvalid, "is a path"},
		{"absolute title", func(m *v1.Manifest) { m.Layers[1].Annotations[AnnotationTitle] = "/kernel" }, ErrInvalid, "is a path"},
		{"no title", func(m *v1.Manifest) { delete(m.Layers[2].Annotations, AnnotationTitle) }, ErrInvalid, "no org.opencontainers.image.title"},
		{"duplicate", func(m *v1.Manifest) {
			m.Layers[2].Annotations[AnnotationTitle] = "kernel"
			m.Layers[2].MediaType = KernelMediaType
		}, ErrInvalid, "appears twice"},
		{"missing rootfs", func(m *v1.Manifest) { m.Layers = m.Layers[:3] }, ErrInvalid, `no layer titled "rootfs.img"`},
		{"absurd size", func(m *v1.Manifest) { m.Layers[3].Size = 1 << 62 }, ErrInvalid, "size 4611686018427387904"},
		{"negative size", func(m *v1.Manifest) { m.Layers[3].Size = -1 }, ErrInvalid, "size -1"},
		{"huge config", func(m *v1.Manifest) { m.Layers[0].Size = layout.MaxConfigBytes + 1 }, ErrInvalid, "config.json"},
		{"unknown media type", func(m *v1.Manifest) { m.Layers[1].MediaType = "application/x-evil" }, ErrUnsupported, "application/x-evil"},
		{"other artifact", func(m *v1.Manifest) { m.ArtifactType = "application/vnd.example+json" }, ErrUnsupported, "application/vnd.example+json"},
		{"other config", func(m *v1.Manifest) { m.Config.MediaType = "application/vnd.oci.image.config.v1+json" }, ErrUnsupported, "config media type"},
		{"config not the layer", func(m *v1.Manifest) { m.Config.Digest.Hex = strings.Repeat("f", 64) }, ErrInvalid, "not the config blob"},
		{"sha512", func(m *v1.Manifest) { m.Layers[1].Digest = v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("0", 128)} }, ErrInvalid, "not sha256"},
		{"foreign", func(m *v1.Manifest) { m.Layers[1].URLs = []string{"http://example.com/k"} }, ErrInvalid, "foreign"},
		{"schema 1", func(m *v1.Manifest) { m.SchemaVersion = 1 }, ErrInvalid, "schemaVersion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseManifest(manifestWith(t, tc.edit), DefaultMaxFileBytes)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, _, err := ParseManifest(manifestWith(t, func(*v1.Manifest) {}), 1<<20); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 4 MiB rootfs under a 1 MiB bound: %v", err)
	}
}

func TestPickManifest(t *testing.T) {
	a, err := NewArtifact(layouttest.Config(), testFiles(), false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := PickManifest(a.Index, "linux/amd64")
	if err != nil || d.Digest != a.ManifestDesc.Digest {
		t.Fatalf("%v %v", d, err)
	}
	if _, err := PickManifest(a.Index, "linux/arm64"); err == nil || !strings.Contains(err.Error(), "linux/amd64") {
		t.Fatalf("arm64: %v", err)
	}
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("the kernel, say")
	h, n, _ := v1.SHA256(bytes.NewReader(data))
	d := v1.Descriptor{Digest: h, Size: n}
	out := t.TempDir()

	// Wrong bytes: nothing in the store, nothing at dst.
	err = st.Add(ctx, d, bytes.NewReader([]byte("the kernel, sax")), filepath.Join(out, "a"), "kernel")
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("wrong bytes: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	if _, err := os.Stat(st.Path(h)); err == nil {
		t.Fatal("a wrong blob entered the store")
	}
	if err := st.Add(ctx, d, bytes.NewReader(append(data, '!')), filepath.Join(out, "a"), "kernel"); !errors.Is(err, ErrDigest) {
		t.Fatalf("one byte too many: %v", err)
	}
	if ok, err := st.CopyTo(ctx, d, filepath.Join(out, "b")); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}

	if err := st.Add(ctx, d, bytes.NewReader(data), filepath.Join(out, "a"), "kernel"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.CopyTo(ctx, d, filepath.Join(out, "b")); !ok || err != nil {
		t.Fatalf("stored blob: %v %v", ok, err)
	}
	for _, p := range []string{filepath.Join(out, "a"), filepath.Join(out, "b"), st.Path(h)} {
		if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
			t.Errorf("%s holds %q", p, b)
		}
	}
	// A stored blob changed on disk is dropped, not used.
	if err := os.WriteFile(st.Path(h), []byte("the kernel, sax"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.CopyTo(ctx, d, filepath.Join(out, "c")); ok || err != nil {
		t.Fatalf("corrupt stored blob: %v %v", ok, err)
	}
	if _, err := os.Stat(st.Path(h)); err == nil {
		t.Error("the corrupt blob is still in the store")
	}
	if _, err := os.Stat(filepath.Join(out, "c")); err == nil {
		t.Error("a corrupt stored blob was copied out")
	}
}

func TestHTTPGuard(t *testing.T) {
	for host, ok := range map[string]bool{"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "10.0.0.1": false, "192.168.1.1": false, "example.com": false, "localhost.example.com": false} {
		if IsLoopback(host) != ok {
			t.Errorf("IsLoopback(%q) = %v", host, !ok)
		}
	}
	var seen []string
	g := &httpGuard{next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL.String())
		return nil, errors.New("not sent")
	})}
	for _, u := range []string{"http://10.1.2.3:5000/v2/", "http://127.0.0.1:5000/v2/", "https://example.com/v2/"} {
		req, _ := http.NewRequest("GET", u, nil)
		g.RoundTrip(req)
	}
	g.insecure = true
	req, _ := http.NewRequest("GET", "http://10.1.2.3:5000/v2/", nil)
	g.RoundTrip(req)
	want := "https://10.1.2.3:5000/v2/ http://127.0.0.1:5000/v2/ https://example.com/v2/ http://10.1.2.3:5000/v2/"
	if got := strings.Join(seen, " "); got != want {
		t.Errorf("sent %s, want %s", got, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestIsRemoteRef(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1:5000/hello:1": true, "reg.example.com/a/b@sha256:" + strings.Repeat("a", 64): true, "localhost/x": true,
		"hello.js": false, "out": false, "app:1": false, "./out": false, "example/hello-go": false,
	} {
		if got := IsRemoteRef(s); got != want {
			t.Errorf("IsRemoteRef(%q) = %v", s, got)
		}
	}
}

// countingTransport counts requests and blob GETs.
type countingTransport struct {
	mu       sync.Mutex
	requests int
	blobGets int
	blobPuts int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.requests++
	if strings.Contains(req.URL.Path, "/blobs/") {
		switch req.Method {
		case http.MethodGet:
			c.blobGets++
		case http.MethodPut, http.MethodPost, http.MethodPatch:
			c.blobPuts++
		}
	}
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestPushPull round-trips a layout through ggcr's in-memory registry: the
// logic of push (skip what is there) and pull (the store saves every GET).
func TestPushPull(t *testing.T) {
	ctx := context.Background()
	src, host := testLayout(t), memRegistry(t)
	ref := host + "/apps/hello:1"
	ct := &countingTransport{}
	opts := []Option{WithTransport(ct), WithStore(t.TempDir())}

	if _, err := layouttest.Write(src, layouttest.Config(), layouttest.Files{SBOM: true}); err != nil {
		t.Fatal(err)
	}
	sbom, err := os.ReadFile(filepath.Join(src, spec.SBOMFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := layout.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FetchSBOM(ctx, ref, opts...); err == nil {
		t.Fatal("an SBOM before the push")
	}
	p1, err := Push(ctx, l, ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Uploaded != 4 {
		t.Errorf("first push sent %d blobs, want 4", p1.Uploaded)
	}
	if got, err := FetchSBOM(ctx, ref, opts...); err != nil || !bytes.Equal(got, sbom) || p1.SBOM == nil {
		t.Errorf("the SBOM back: %q, %v (pushed as %v)", got, err, p1.SBOM)
	}
	puts := ct.blobPuts
	p2, err := Push(ctx, l, ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Uploaded != 0 || ct.blobPuts != puts || p2.Index != p1.Index {
		t.Errorf("second push: sent %d blobs, %d upload requests, index %s vs %s", p2.Uploaded, ct.blobPuts-puts, p2.Index, p1.Index)
	}

	dst := filepath.Join(t.TempDir(), "pulled")
	r1, err := Pull(ctx, ref, dst, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Fetched != 4 || r1.Manifest != p1.Manifest {
		t.Errorf("first pull fetched %d, manifest %s (pushed %s)", r1.Fetched, r1.Manifest, p1.Manifest)
	}
	for _, n := range append(layout.Required, spec.SBOMFile) {
		a, _ := os.ReadFile(filepath.Join(src, n))
		b, _ := os.ReadFile(filepath.Join(dst, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after the round trip", n)
		}
	}
	gets := ct.blobGets
	r2, err := Pull(ctx, ref, dst, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Fetched != 0 || ct.blobGets != gets {
		t.Errorf("second pull fetched %d blobs with %d GETs", r2.Fetched, ct.blobGets-gets)
	}
	// A directory that is not a layout is not replaced, and nothing is fetched.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "notes.txt"), []byte("mine"), 0o644)
	if _, err := Pull(ctx, ref, busy, opts...); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("pull over a foreign directory: %v", err)
	}
}

// testLayout writes a small valid layout and returns its directory.
func testLayout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := layouttest.Write(dir, layouttest.Config(), layouttest.Files{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// memRegistry serves go-containerregistry's in-memory registry on loopback
// for the test and returns its host:port.
func memRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
