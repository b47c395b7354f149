package kernel

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/uniforge/packer-plugin-unikernel/kernel/distro"
)

// fakeBzImage is the setup header of an x86-64 bzImage (boot protocol
// 2.15) whose kernel_version says release, padded with pad bytes: enough
// for findKernelTree and MinMemory, not bootable.
func fakeBzImage(release string, prefAddress uint64, initSize uint32, pad int) []byte {
	img := make([]byte, 0x400+pad)
	copy(img[bzMagicOffset:], "HdrS")
	binary.LittleEndian.PutUint16(img[bzVersionOffset:], 0x020f)
	binary.LittleEndian.PutUint16(img[bzKernelVerOffset:], 0x300-0x200)
	binary.LittleEndian.PutUint16(img[bzXLoadFlagsOffset:], 1)
	binary.LittleEndian.PutUint64(img[bzPrefAddrOffset:], prefAddress)
	binary.LittleEndian.PutUint32(img[bzInitSizeOffset:], initSize)
	copy(img[0x300:], release+" (test@example) #1 SMP\x00")
	for i := 0x400; i < len(img); i++ {
		img[i] = byte(i * 7 % 251) // some work for the decompressor
	}
	return img
}

// fakeKernelDeb is a kernel image package as Debian lays it out (control,
// then data.tar.xz holding boot/vmlinuz-<release> and one small module).
func fakeKernelDeb(t testing.TB, pkg, version, release string, pad int) []byte {
	t.Helper()
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nSource: linux\nDescription: test kernel\n", pkg, version)
	var ctl bytes.Buffer
	gz := gzip.NewWriter(&ctl)
	writeTar(t, gz, map[string][]byte{"./control": []byte(control)})
	gz.Close()
	var data bytes.Buffer
	xw, err := xz.NewWriter(&data)
	if err != nil {
		t.Fatal(err)
	}
	ko, err := os.ReadFile(filepath.Join("modinfo", "testdata", "tiny.ko"))
	if err != nil {
		t.Fatal(err)
	}
	writeTar(t, xw, map[string][]byte{
		"./boot/vmlinuz-" + release:                            fakeBzImage(release, 0x1000000, 0x2000000, pad),
		"./lib/modules/" + release + "/kernel/drivers/tiny.ko": ko,
	})
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		body []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctl.Bytes()}, {"data.tar.xz", data.Bytes()}} {
		fmt.Fprintf(&ar, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m.name, "0", "0", "0", "100644", len(m.body))
		ar.Write(m.body)
		if len(m.body)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	return ar.Bytes()
}

func writeTar(t testing.TB, w interface{ Write([]byte) (int, error) }, files map[string][]byte) {
	t.Helper()
	tw := tar.NewWriter(w)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// fakeMirror serves one package file, as a Debian mirror would, counting
// the downloads; delay holds each answer back.
type fakeMirror struct {
	srv   *httptest.Server
	body  []byte
	hits  atomic.Int32
	delay time.Duration
}

func newFakeMirror(t *testing.T, body []byte) *fakeMirror {
	m := &fakeMirror{body: body}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		select {
		case <-time.After(m.delay):
			w.Write(m.body)
		case <-r.Context().Done(): // the client gave up
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// pkg is what apt's index would say about the served file: size and hash
// of want (the genuine package), which the mirror may or may not serve.
func (m *fakeMirror) pkg(want []byte) distro.Package {
	sum := sha256.Sum256(want)
	return distro.Package{
		Name: "linux-image-9.9-test", Version: "9.9-1",
		URI: m.srv.URL + "/pool/linux-image-9.9-test_9.9-1_amd64.deb", File: "linux-image-9.9-test_9.9-1_amd64.deb",
		Size: int64(len(want)), SHA256: hex.EncodeToString(sum[:]),
	}
}

// withLocate makes Resolve find the distro kernel package p without apt.
func withLocate(p distro.Package) Option {
	return func(c *config) {
		c.locate = func(ctx context.Context) (distro.Package, error) { return p, nil }
	}
}
