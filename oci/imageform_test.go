package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/uniforge/packer-plugin-unikernel/layout"
)

type tarEntry struct {
	name, link string
	typ        byte
	body       []byte
	size       int64 // the size the header claims, when not len(body): the stream then ends after body
}

func tarLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	b := tarBytes(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tarBytes is a tar archive of entries (regular files by default).
func tarBytes(tb testing.TB, entries ...tarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if e.size != 0 {
			// A hostile header: its body never comes.
			buf.Write(e.body)
			buf.Write(make([]byte, 1024))
			return buf.Bytes()
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(e.body)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// layoutEntries are the files of a test layout as tar entries at the root.
func layoutEntries(t *testing.T, dir string, prefix string) []tarEntry {
	var out []tarEntry
	for _, n := range layout.Required {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{name: prefix + n, body: b})
	}
	return out
}

func pushImageForm(t *testing.T, ref string, layers ...v1.Layer) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
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

func TestPullImageForm(t *testing.T) {
	ctx := context.Background()
	src, host := testLayout(t), memRegistry(t)
	opts := []Option{WithStore(t.TempDir())}

	// What buildx makes: the files at the root ("./kernel" spelling too),
	// beside entries that are not ours; a later layer replaces a file.
	files := layoutEntries(t, src, "./")
	stale := tarEntry{name: "kernel", body: []byte("an older kernel")}
	first := tarLayer(t, stale, tarEntry{name: "etc/", typ: tar.TypeDir}, tarEntry{name: "etc/kernel", body: []byte("not at the root")})
	second := tarLayer(t, append(files, tarEntry{name: "README", body: []byte("ignored")})...)
	pushImageForm(t, host+"/apps/buildx:1", first, second)
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := Pull(ctx, host+"/apps/buildx:1", dst, opts...); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != len(layout.Required) {
		t.Errorf("pulled %v", ents)
	}
	for _, n := range layout.Required {
		a, _ := os.ReadFile(filepath.Join(src, n))
		b, _ := os.ReadFile(filepath.Join(dst, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs", n)
		}
	}

	// A layout name that is a link is refused, and nothing is written.
	link := tarLayer(t, append(layoutEntries(t, src, "")[1:], tarEntry{name: "config.json", typ: tar.TypeSymlink, link: "/etc/passwd"})...)
	pushImageForm(t, host+"/apps/buildx:link", link)
	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := Pull(ctx, host+"/apps/buildx:link", bad, opts...); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a symlinked config.json: %v", err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("the refused pull wrote its output")
	}

	// An image without the files is not a layout.
	pushImageForm(t, host+"/apps/buildx:empty", tarLayer(t, tarEntry{name: "hello", body: []byte("x")}))
	if _, err := Pull(ctx, host+"/apps/buildx:empty", filepath.Join(t.TempDir(), "e"), opts...); !errors.Is(err, layout.ErrNotLayout) {
		t.Fatalf("an image without layout files: %v", err)
	}
}
