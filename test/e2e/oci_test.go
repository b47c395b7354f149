package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// ociRegistry is a real distribution registry with its storage directory,
// behind a reverse proxy on loopback that counts blob uploads.
type ociRegistry struct {
	addr    string // the proxy's host:port, what the test pushes to
	storage string // the registry's storage root

	mu      sync.Mutex
	uploads int // PATCH and PUT requests that carry blob bytes
	mounts  int // cross-repository mounts the registry made
	gets    int // blob GETs
}

func startOCIRegistry(t *testing.T) *ociRegistry {
	t.Helper()
	addr, storage := startRegistryWithStorage(t)
	r := &ociRegistry{storage: storage}
	target, _ := url.Parse("http://" + addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		if !strings.Contains(req.URL.Path, "/blobs/") {
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case req.Method == http.MethodGet:
			r.gets++
		case req.Method == http.MethodPost && req.URL.Query().Get("mount") != "" && resp.StatusCode == http.StatusCreated:
			r.mounts++
		case (req.Method == http.MethodPatch || req.Method == http.MethodPut) && req.ContentLength != 0:
			r.uploads++
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r.addr = l.Addr().String()
	return r
}

func (r *ociRegistry) counts() (uploads, mounts, gets int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploads, r.mounts, r.gets
}

// blobData is where the registry stores the blob with digest d.
func (r *ociRegistry) blobData(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	return filepath.Join(r.storage, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

// buildHelloGo builds example/hello-go (with extra Unifile lines) into a layout.
func buildHelloGo(t *testing.T, extra string) string {
	t.Helper()
	ctx := helloGoContext(t, t.TempDir())
	if extra != "" {
		b, err := os.ReadFile(filepath.Join(ctx, "Unifile"))
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, ctx, map[string]string{"Unifile": string(b) + extra + "\n"})
	}
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	return out
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, _, err := v1.SHA256(f)
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// oras runs the real oras CLI.
func oras(t *testing.T, args ...string) string {
	t.Helper()
	bin := testtool.Need(t, "oras")[0]
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no credentials of the user's
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOCIPushOrasPull: uni push, then the real oras pulls plain files that
// are the layout's, byte for byte; oras sees our artifactType and the SBOM
// referrer; a second push sends no blob.
func TestOCIPushOrasPull(t *testing.T) {
	testtool.Need(t, "oras")
	reg := startOCIRegistry(t)
	out := buildHelloGo(t, "")
	if _, err := os.Stat(filepath.Join(out, spec.SBOMFile)); err != nil {
		t.Fatalf("the build wrote no %s: %v", spec.SBOMFile, err)
	}
	ref := reg.addr + "/apps/hello-go:1"
	first := mustUni(t, "", "push", out, ref)
	up1, _, _ := reg.counts()
	if up1 < 4 {
		t.Fatalf("the first push sent %d blobs, want at least 4", up1)
	}

	d := filepath.Join(t.TempDir(), "d")
	oras(t, "pull", "--plain-http", ref, "-o", d)
	for _, n := range []string{spec.KernelFile, spec.InitrdFile, spec.RootfsFile, spec.ConfigFile} {
		a, b := hostFile(t, filepath.Join(out, n)), hostFile(t, filepath.Join(d, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s pulled by oras differs from the pushed one (%d vs %d bytes)", n, len(b), len(a))
		}
	}
	l, err := layout.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(t.Context()); err != nil {
		t.Fatalf("the layout oras pulled does not verify: %v", err)
	}

	// oras resolves the index to our manifest.
	var idx v1.IndexManifest
	if err := json.Unmarshal([]byte(oras(t, "manifest", "fetch", "--plain-http", ref)), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(idx.Manifests))
	}
	mf := oras(t, "manifest", "fetch", "--plain-http", reg.addr+"/apps/hello-go@"+idx.Manifests[0].Digest.String())
	if !strings.Contains(mf, `"artifactType":"`+oci.ArtifactType+`"`) {
		t.Errorf("oras manifest fetch does not show our artifactType:\n%s", mf)
	}
	if disc := oras(t, "discover", "--plain-http", ref); !strings.Contains(disc, oci.SBOMMediaType) {
		t.Errorf("oras discover does not list the SBOM:\n%s", disc)
	}

	// The same layout again: the same digest, no blob sent.
	second := mustUni(t, "", "push", out, ref)
	up2, _, _ := reg.counts()
	if up2 != up1 {
		t.Errorf("the second push sent %d blob requests:\n%s", up2-up1, second)
	}
	pushedAs := regexp.MustCompile(regexp.QuoteMeta(ref) + `@sha256:[0-9a-f]{64}`)
	if a, b := pushedAs.FindString(first), pushedAs.FindString(second); a == "" || a != b {
		t.Errorf("the same layout pushed twice gave %q and %q:\n%s\n%s", a, b, first, second)
	}

	// uni pull gives the same files; a second pull reads no blob.
	cache := t.TempDir()
	p := filepath.Join(t.TempDir(), "p")
	if log, st := runUni(t, cache, "", "pull", "-o", p, ref); st != 0 {
		t.Fatalf("uni pull: exit %d\n%s", st, log)
	}
	for _, n := range layout.Required {
		if fileDigest(t, filepath.Join(p, n)) != fileDigest(t, filepath.Join(out, n)) {
			t.Errorf("%s differs after uni pull", n)
		}
	}
	_, _, gets := reg.counts()
	if log, st := runUni(t, cache, "", "pull", "-o", p, ref); st != 0 {
		t.Fatalf("second uni pull: exit %d\n%s", st, log)
	}
	if _, _, g := reg.counts(); g != gets {
		t.Errorf("the second pull of the same digest made %d blob GETs", g-gets)
	}
	insp := mustUni(t, "", "inspect", ref)
	for _, want := range []string{"/hello", "8080/tcp", fileDigest(t, filepath.Join(out, spec.KernelFile))} {
		if !strings.Contains(insp, want) {
			t.Errorf("uni inspect lacks %q:\n%s", want, insp)
		}
	}
}

// TestOCISharedKernel: two apps on one kernel store one kernel blob; the
// second push mounts it from the first app's repository.
func TestOCISharedKernel(t *testing.T) {
	reg := startOCIRegistry(t)
	one := buildHelloGo(t, "")
	two := buildHelloGo(t, "ENV GREETING=two")
	kd := fileDigest(t, filepath.Join(one, spec.KernelFile))
	if kd != fileDigest(t, filepath.Join(two, spec.KernelFile)) {
		t.Fatal("the two builds have different kernels")
	}
	if fileDigest(t, filepath.Join(one, spec.InitrdFile)) == fileDigest(t, filepath.Join(two, spec.InitrdFile)) {
		t.Fatal("the two apps are the same image")
	}
	mustUni(t, "", "push", one, reg.addr+"/apps/one:1")
	_, m0, _ := reg.counts()
	log := mustUni(t, "", "push", "--mount-from", reg.addr+"/apps/one", two, reg.addr+"/apps/two:1")
	if _, m1, _ := reg.counts(); m1 == m0 || !strings.Contains(log, "kernel: mounted from") {
		t.Errorf("the kernel was not mounted (%d mounts):\n%s", m1-m0, log)
	}
	if _, err := os.Stat(reg.blobData(kd)); err != nil {
		t.Fatalf("the kernel blob is not in the registry's storage: %v", err)
	}
	var copies int
	filepath.WalkDir(reg.storage, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() == "data" && strings.Contains(p, "/blobs/") {
			if fileDigest(t, p) == kd {
				copies++
			}
		}
		return nil
	})
	if copies != 1 {
		t.Errorf("the registry stores the kernel %d times, want once", copies)
	}
	for _, repo := range []string{"one", "two"} {
		link := filepath.Join(reg.storage, "docker/registry/v2/repositories/apps", repo, "_layers/sha256", strings.TrimPrefix(kd, "sha256:"), "link")
		if _, err := os.Stat(link); err != nil {
			t.Errorf("repository %s does not link the kernel: %v", repo, err)
		}
	}
}

// TestOCIPullCorruptBlob: a blob changed in the registry's storage fails
// the pull with a digest error, and nothing is left behind.
func TestOCIPullCorruptBlob(t *testing.T) {
	reg := startOCIRegistry(t)
	out := buildHelloGo(t, "")
	ref := reg.addr + "/apps/corrupt:1"
	mustUni(t, "", "push", out, ref)
	data := reg.blobData(fileDigest(t, filepath.Join(out, spec.RootfsFile)))
	b := hostFile(t, data)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	d := filepath.Join(parent, "d")
	log, st := runUni(t, t.TempDir(), "", "pull", "-o", d, ref)
	if st == 0 {
		t.Fatalf("uni pull of a corrupt blob succeeded:\n%s", log)
	}
	if !strings.Contains(log, "digest") || !strings.Contains(log, spec.RootfsFile) {
		t.Errorf("the error does not name the file and the digest:\n%s", log)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("the failed pull left %v", ents)
	}
}

// TestOCIPullHostile: manifests pushed by hand with a title that escapes
// and with an absurd size are refused before anything is written.
func TestOCIPullHostile(t *testing.T) {
	reg := startOCIRegistry(t)
	repo, err := name.NewRepository(reg.addr + "/apps/hostile")
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte(`{"schemaVersion":1}`), oci.ConfigMediaType)
	small := static.NewLayer([]byte("x"), oci.KernelMediaType)
	for _, l := range []v1.Layer{cfg, small} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer, mt types.MediaType, title string, size int64) v1.Descriptor {
		d, _ := l.Digest()
		if size < 0 {
			size, _ = l.Size()
		}
		return v1.Descriptor{MediaType: mt, Digest: d, Size: size, Annotations: map[string]string{oci.AnnotationTitle: title}}
	}
	cd := desc(cfg, oci.ConfigMediaType, spec.ConfigFile, -1)
	base := func() []v1.Descriptor {
		return []v1.Descriptor{cd,
			desc(small, oci.KernelMediaType, spec.KernelFile, -1),
			desc(small, oci.InitrdMediaType, spec.InitrdFile, -1),
			desc(small, oci.RootfsMediaType, spec.RootfsFile, -1)}
	}
	escape := base()
	escape[1].Annotations[oci.AnnotationTitle] = "../../x"
	absurd := base()
	absurd[3].Size = 1 << 50
	for tag, layers := range map[string][]v1.Descriptor{"escape": escape, "absurd": absurd} {
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: oci.ArtifactType,
			Config: v1.Descriptor{MediaType: cd.MediaType, Digest: cd.Digest, Size: cd.Size}, Layers: layers}
		raw, _ := json.Marshal(m)
		if err := remote.Put(repo.Tag(tag), rawManifest(raw)); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		t.Run(tag, func(t *testing.T) {
			parent := t.TempDir()
			work := filepath.Join(parent, "a", "b")
			if err := os.MkdirAll(work, 0o755); err != nil {
				t.Fatal(err)
			}
			_, _, gets := reg.counts()
			log, st := runUni(t, t.TempDir(), work, "pull", "-o", "d", repo.Tag(tag).String())
			if st == 0 {
				t.Fatalf("uni pull of a hostile manifest succeeded:\n%s", log)
			}
			want := map[string]string{"escape": `"../../x" is a path`, "absurd": "size 1125899906842624"}[tag]
			if !strings.Contains(log, want) {
				t.Errorf("the error does not say %q:\n%s", want, log)
			}
			if _, _, g := reg.counts(); g != gets {
				t.Errorf("%d blobs were downloaded before the refusal", g-gets)
			}
			var left []string
			filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
				if p != parent && p != filepath.Join(parent, "a") && p != work {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("the refused pull wrote %v", left)
			}
		})
	}
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestOCIRunPulled boots what oras pulled and what uni run pulls itself.
func TestOCIRunPulled(t *testing.T) {
	needBoot(t)
	testtool.Need(t, "oras")
	reg := startOCIRegistry(t)
	out := buildHelloGo(t, "")
	ref := reg.addr + "/apps/run:1"
	mustUni(t, "", "push", out, ref)
	d := filepath.Join(t.TempDir(), "d")
	oras(t, "pull", "--plain-http", ref, "-o", d)
	for _, target := range []string{d, ref} {
		t.Run(filepath.Base(target), func(t *testing.T) {
			port := freePort(t)
			r := startUni(t, "", "run", "-p", fmt.Sprintf("%d:8080", port), target)
			if body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Minute); body != "Hello from Go\n" {
				t.Errorf("answer %q", body)
			}
			r.stop(t)
		})
	}
}

// TestOCIPullImageForm: the image form docker buildx pushes (a container
// image whose gzip tar layer holds the layout's files at its root), made
// here with go-containerregistry, pulls into a layout that verifies.
func TestOCIPullImageForm(t *testing.T) {
	reg := startOCIRegistry(t)
	out := buildHelloGo(t, "")
	var files []layerFile
	for _, n := range layout.Required {
		files = append(files, layerFile{name: n, body: hostFile(t, filepath.Join(out, n))})
	}
	files = append(files, layerFile{name: "etc/", typ: '5', mode: 0o755})
	ref := pushImage(t, reg.addr, "apps/buildx:1", v1.Config{}, makeLayer(t, files...))
	d := filepath.Join(t.TempDir(), "d")
	if log, st := runUni(t, t.TempDir(), "", "pull", "-o", d, ref); st != 0 {
		t.Fatalf("uni pull of the image form: exit %d\n%s", st, log)
	}
	for _, n := range layout.Required {
		if !bytes.Equal(hostFile(t, filepath.Join(d, n)), hostFile(t, filepath.Join(out, n))) {
			t.Errorf("%s differs after pulling the image form", n)
		}
	}
	if insp := mustUni(t, "", "inspect", d); !strings.Contains(insp, "8080/tcp") {
		t.Errorf("uni inspect of the pulled layout:\n%s", insp)
	}
}
