package distro

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

func TestParsePrintURIs(t *testing.T) {
	const sum = "4fdd0172a8c3f41a97e92465b2ac1867e1c10d82d7aeed3d26ee7a5d14df1754"
	good := "'http://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-amd64/linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb' linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb 26705532 SHA256:" + sum + "\n"
	p, err := parsePrintURIs([]byte("Reading package lists...\n" + good))
	if err != nil {
		t.Fatal(err)
	}
	if p.Size != 26705532 || p.SHA256 != sum || p.File != "linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb" || !strings.HasPrefix(p.URI, "http://deb.debian.org/") {
		t.Errorf("parsed %+v", p)
	}
	for name, out := range map[string]string{
		"empty":      "",
		"md5 only":   "'http://x/a.deb' a.deb 10 MD5Sum:0123456789abcdef0123456789abcdef\n",
		"bad size":   "'http://x/a.deb' a.deb -1 SHA256:" + sum + "\n",
		"short hash": "'http://x/a.deb' a.deb 10 SHA256:abcd\n",
		"path name":  "'http://x/a.deb' ../a.deb 10 SHA256:" + sum + "\n",
		"dot name":   "'http://x/a.deb' .a.deb 10 SHA256:" + sum + "\n",
		"not a deb":  "'http://x/a' a 10 SHA256:" + sum + "\n",
	} {
		if p, err := parsePrintURIs([]byte(out)); err == nil {
			t.Errorf("%s: accepted as %+v", name, p)
		}
	}
}

// mirror serves body for every request, after delay (or until the client gives up).
func mirror(t *testing.T, body []byte, delay time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing.deb" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", "") // stream: no length up front
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-time.After(delay):
			w.Write(body[len(body)/2:])
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func pkgOf(uri string, want []byte) Package {
	sum := sha256.Sum256(want)
	return Package{Name: "k", Version: "1", URI: uri, File: "k_1_amd64.deb", Size: int64(len(want)), SHA256: hex.EncodeToString(sum[:])}
}

func TestDownloadChecks(t *testing.T) {
	want := bytes.Repeat([]byte("kernel package "), 1000)
	for _, c := range []struct {
		name     string
		served   []byte
		path     string
		mismatch bool
	}{
		{"genuine", want, "/k.deb", false},
		{"tampered", append(bytes.Clone(want[:len(want)-1]), 'X'), "/k.deb", true},
		{"short", want[:len(want)-10], "/k.deb", true},
		{"long", append(bytes.Clone(want), 'X'), "/k.deb", true},
		{"not found", want, "/missing.deb", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := mirror(t, c.served, 0)
			dir := t.TempDir()
			var log bytes.Buffer
			got, err := Download(context.Background(), pkgOf(srv.URL+c.path, want), dir, progress.New(&log))
			entries, _ := os.ReadDir(dir)
			if c.name == "genuine" {
				if err != nil {
					t.Fatal(err)
				}
				if data, _ := os.ReadFile(got); !bytes.Equal(data, want) || len(entries) != 1 {
					t.Errorf("downloaded %d bytes, dir holds %d entries", len(data), len(entries))
				}
				if !strings.Contains(log.String(), "downloading k 1 (14.6 KiB)\ndownloaded k 1 (14.6 KiB) in ") {
					t.Errorf("progress:\n%s", log.String())
				}
				return
			}
			var dl *DownloadError
			if !errors.As(err, &dl) || errors.Is(err, ErrMismatch) != c.mismatch {
				t.Errorf("error %v: want a *DownloadError, ErrMismatch %v", err, c.mismatch)
			}
			if len(entries) != 0 {
				t.Errorf("a failed download left %d files", len(entries))
			}
		})
	}
}

func TestDownloadCancelled(t *testing.T) {
	want := bytes.Repeat([]byte("x"), 1<<20)
	srv := mirror(t, want, time.Minute)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Download(ctx, pkgOf(srv.URL+"/k.deb", want), dir, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled download: %v, want the context's error", err)
	}
	var dl *DownloadError
	if !errors.As(err, &dl) {
		t.Errorf("not a *DownloadError: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to stop", d)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a cancelled download left %d files", len(entries))
	}
}

func TestVerify(t *testing.T) {
	want := []byte("the genuine package")
	p := pkgOf("http://unused/k.deb", want)
	path := filepath.Join(t.TempDir(), p.File)
	os.WriteFile(path, want, 0o644)
	if err := Verify(path, p); err != nil {
		t.Errorf("genuine: %v", err)
	}
	os.WriteFile(path, []byte("the planted package"), 0o644) // same size, other bytes
	if err := Verify(path, p); !errors.Is(err, ErrMismatch) {
		t.Errorf("planted: %v, want ErrMismatch", err)
	}
}

// TestCloudKernelFromApt asks the host's apt (no download) where the
// cloud kernel is: the index must give a URI, a size and a SHA256.
func TestCloudKernelFromApt(t *testing.T) {
	testtool.NeedFile(t, "/etc/debian_version", "a Debian-family host (base-files)")
	testtool.Need(t, "apt-get", "apt-cache")
	p, err := CloudKernel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", p)
	if !strings.HasPrefix(p.Name, "linux-image-") || p.Version == "" || !strings.HasPrefix(p.File, p.Name+"_") ||
		p.Size < 1<<20 || len(p.SHA256) != 64 || !strings.Contains(p.URI, "://") {
		t.Errorf("implausible package %+v", p)
	}
}

// FuzzParsePrintURIs: whatever apt prints, an accepted package has a
// plain .deb file name, a positive size and a 64-digit SHA256.
func FuzzParsePrintURIs(f *testing.F) {
	f.Add([]byte("'http://deb.debian.org/debian/pool/main/l/linux/linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb' linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb 26705532 SHA256:4fdd0172a8c3f41a97e92465b2ac1867e1c10d82d7aeed3d26ee7a5d14df1754\n"))
	f.Add([]byte("'file:/srv/mirror/a.deb' a.deb 1 SHA256:4FDD0172A8C3F41A97E92465B2AC1867E1C10D82D7AEED3D26EE7A5D14DF1754"))
	f.Fuzz(func(t *testing.T, out []byte) {
		p, err := parsePrintURIs(out)
		if err != nil {
			return
		}
		if p.File != filepath.Base(p.File) || !strings.HasSuffix(p.File, ".deb") || strings.HasPrefix(p.File, ".") ||
			p.Size <= 0 || len(p.SHA256) != 64 || strings.ToLower(p.SHA256) != p.SHA256 {
			t.Errorf("accepted %+v", p)
		}
	})
}
