package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tarEntry is one entry of a hand-made data or control archive.
type tarEntry struct {
	name, body, link string
	typ              byte
}

func makeTarGz(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil && e.typ == tar.TypeReg {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeAr writes an ar archive of the members, in order.
func makeAr(members [][2]string) []byte {
	var buf bytes.Buffer
	buf.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&buf, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m[0]+"/", "0", "0", "0", "100644", len(m[1]))
		buf.WriteString(m[1])
		if len(m[1])%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

const testControl = "Package: linux-image-test\nVersion: 1.2-3\nArchitecture: amd64\n" +
	"Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120) | linux-initramfs-tool\n" +
	"Description: a test\n more text\n"

func makeDeb(t testing.TB, data []tarEntry) []byte {
	t.Helper()
	control := makeTarGz(t, []tarEntry{{name: "./control", body: testControl, typ: tar.TypeReg}})
	return makeAr([][2]string{
		{"debian-binary", "2.0\n"},
		{"control.tar.gz", string(control)},
		{"data.tar.gz", string(makeTarGz(t, data))},
	})
}

func writeDeb(t *testing.T, data []tarEntry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.deb")
	if err := os.WriteFile(p, makeDeb(t, data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExtractKeepsOnlyWantedRegularFiles(t *testing.T) {
	debPath := writeDeb(t, []tarEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "./boot/", typ: tar.TypeDir},
		{name: "./boot/vmlinuz-1", body: "kernel", typ: tar.TypeReg},
		{name: "./usr/share/doc/x", body: "doc", typ: tar.TypeReg},
		{name: "./lib/modules/1/a.ko", body: "odd", typ: tar.TypeReg},
		{name: "./lib/modules/1/build", link: "/usr/src/linux", typ: tar.TypeSymlink},
		{name: "./lib/modules/1/hard", link: "./boot/vmlinuz-1", typ: tar.TypeLink},
		{name: "./lib/modules/1/null", typ: tar.TypeChar},
		{name: "./lib/modules/1/fifo", typ: tar.TypeFifo},
	})
	dest := t.TempDir()
	keep := func(name string) bool { return !strings.HasPrefix(name, "usr/") }
	pkg, err := Extract(context.Background(), debPath, dest, keep)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pkg.Files, []string{"boot/vmlinuz-1", "lib/modules/1/a.ko"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if got, want := pkg.Skipped, []string{"lib/modules/1/build", "lib/modules/1/hard", "lib/modules/1/null", "lib/modules/1/fifo"}; !reflect.DeepEqual(got, want) {
		t.Errorf("skipped %v, want %v", got, want)
	}
	var found []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dest, p)
			found = append(found, filepath.ToSlash(rel)+":"+fi.Mode().Type().String())
		}
		return nil
	})
	if want := []string{"boot/vmlinuz-1:----------", "lib/modules/1/a.ko:----------"}; !reflect.DeepEqual(found, want) {
		t.Errorf("on disk %v, want %v", found, want)
	}
	if body, _ := os.ReadFile(filepath.Join(dest, "lib/modules/1/a.ko")); string(body) != "odd" {
		t.Errorf("a.ko holds %q", body)
	}
	if pkg.Control.Get("package") != "linux-image-test" || pkg.Control.Get("Description") != "a test\nmore text" {
		t.Errorf("control %v", pkg.Control)
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	for _, evil := range []string{"../evil", "./lib/../../evil", "/abs/evil", "lib/modules/../../../evil"} {
		t.Run(evil, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			debPath := writeDeb(t, []tarEntry{
				{name: "./boot/vmlinuz-1", body: "kernel", typ: tar.TypeReg},
				{name: evil, body: "pwned", typ: tar.TypeReg},
			})
			// keep accepts everything: the escape must fail even so.
			_, err := Extract(context.Background(), debPath, dest, nil)
			if err == nil || !strings.Contains(err.Error(), evil) {
				t.Fatalf("error %v, want one naming %q", err, evil)
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Errorf("the extraction wrote beside its destination: %v", entries)
			}
			if _, err := os.Stat("/abs/evil"); err == nil {
				t.Error("/abs/evil was written")
			}
		})
	}
}

func TestExtractRefusesDuplicatesAndNonEmptyDest(t *testing.T) {
	debPath := writeDeb(t, []tarEntry{
		{name: "./a", body: "1", typ: tar.TypeReg},
		{name: "./a", body: "2", typ: tar.TypeReg},
	})
	if _, err := Extract(context.Background(), debPath, t.TempDir(), nil); err == nil {
		t.Error("a duplicate entry was accepted")
	}
	dest := t.TempDir()
	os.WriteFile(filepath.Join(dest, "x"), nil, 0o644)
	if _, err := Extract(context.Background(), debPath, dest, nil); err == nil {
		t.Error("a non-empty destination was accepted")
	}
}

func TestReadControlAndDepends(t *testing.T) {
	debPath := writeDeb(t, nil)
	c, err := ReadControl(debPath)
	if err != nil {
		t.Fatal(err)
	}
	want := []Dependency{{Name: "kmod"}, {Name: "linux-base", Relation: ">=", Version: "4.3~"}, {Name: "initramfs-tools", Relation: ">=", Version: "0.120"}}
	if got := c.Depends("depends"); !reflect.DeepEqual(got, want) {
		t.Errorf("Depends: %+v, want %+v", got, want)
	}
	parsed, _ := ParseControl(strings.NewReader("Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n"))
	if got := parsed.Depends("Depends"); len(got) != 1 || got[0] != (Dependency{"linux-image-6.1.0-56-cloud-amd64", "=", "6.1.192-2"}) {
		t.Errorf("metapackage Depends: %+v", got)
	}
}

func TestNotADeb(t *testing.T) {
	cases := map[string][]byte{
		"empty":        nil,
		"no magic":     []byte("hello world, this is not an archive"),
		"no control":   makeAr([][2]string{{"debian-binary", "2.0\n"}}),
		"bad version":  makeAr([][2]string{{"debian-binary", "3.0\n"}}),
		"bad size":     []byte(arMagic + "debian-binary/  0           0     0     100644  12x45     `\n"),
		"truncated":    makeAr([][2]string{{"debian-binary", "2.0\n"}})[:70],
		"bad compress": makeAr([][2]string{{"debian-binary", "2.0\n"}, {"control.tar.lz4", "x"}}),
	}
	for name, data := range cases {
		p := filepath.Join(t.TempDir(), "x.deb")
		os.WriteFile(p, data, 0o644)
		if _, err := ReadControl(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
