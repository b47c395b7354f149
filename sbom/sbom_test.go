package sbom

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

var (
	layer1 = rootfs.Origin{Kind: rootfs.OriginBaseImage, Image: "reg.example/base:1", ImageDigest: "sha256:" + strings.Repeat("a", 64), Layer: "sha256:" + strings.Repeat("1", 64)}
	layer2 = rootfs.Origin{Kind: rootfs.OriginBaseImage, Image: "reg.example/base:1", ImageDigest: "sha256:" + strings.Repeat("a", 64), Layer: "sha256:" + strings.Repeat("2", 64)}
)

// testTree holds a file of each origin; /usr/lib/libz.so.1 and
// /usr/lib/libz-copy are the same host file.
func testTree(t *testing.T) (*rootfs.Tree, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	host := filepath.Join(dir, "libz.so.1")
	body := bytes.Repeat([]byte("libz "), 100000) // bigger than one read buffer
	if err := os.WriteFile(host, body, 0o644); err != nil {
		t.Fatal(err)
	}
	contents := map[string]string{
		"/bin/sh":            "shell",
		"/etc/os-release":    "ID=test\n",
		"/app/main.js":       "console.log(1)\n",
		"/etc/motd":          "hi\n",
		"/etc/hosts":         "",
		"/usr/lib/libz.so.1": string(body),
		"/usr/lib/libz-copy": string(body),
	}
	tree := rootfs.NewTree()
	hostOrigin := rootfs.Origin{Kind: rootfs.OriginHost, Path: host}
	for _, e := range []rootfs.Entry{
		{Path: "/bin/sh", Mode: 0o755, Data: []byte("shell"), Origin: layer1},
		{Path: "/etc/os-release", Mode: 0o644, Data: []byte("ID=test\n"), Origin: layer2},
		{Path: "/app/main.js", Mode: 0o644, Data: []byte("console.log(1)\n"), Origin: rootfs.Origin{Kind: rootfs.OriginContext, Path: "main.js"}},
		{Path: "/etc/motd", Mode: 0o644, Data: []byte("hi\n"), Origin: rootfs.Origin{Kind: rootfs.OriginUnifile, Path: "Unifile", Line: 4}},
		{Path: "/etc/hosts", Mode: 0o644, Data: []byte{}, Origin: rootfs.Generated},
		{Path: "/usr/lib/libz.so.1", Mode: 0o644, HostPath: host, Size: int64(len(body)), Origin: hostOrigin},
		{Path: "/usr/lib/libz-copy", Mode: 0o644, HostPath: host, Size: int64(len(body)), Origin: hostOrigin},
		{Path: "/usr/lib/libz.so", Mode: 0o777 | os.ModeSymlink, Link: "libz.so.1", Origin: hostOrigin},
		{Path: "/proc", Mode: os.ModeDir | 0o755, Origin: rootfs.Generated},
	} {
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return tree, contents
}

func testInput(tree *rootfs.Tree) Input {
	return Input{
		Entrypoint: []string{"/bin/sh", "-c", "true"},
		Root:       tree,
		Rootfs:     spec.RootfsRef{Type: "squashfs", Digest: "sha256:" + strings.Repeat("f", 64), Size: 4096},
		Kernel:     spec.KernelRef{Name: "linux", Release: "6.1.0-test", Digest: "sha256:" + strings.Repeat("b", 64)},
		Created:    1700000000,
		Tool:       "uni 0.1.0",
	}
}

func writeDoc(t *testing.T, in Input) []byte {
	t.Helper()
	doc, err := Build(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, doc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The document, parsed back by tools-golang's reader, lists every regular
// file with the checksums crypto/sha1 and crypto/sha256 give, and the
// relationships that name where each came from.
func TestDocumentReadsBack(t *testing.T) {
	tree, contents := testTree(t)
	raw := writeDoc(t, testInput(tree))
	doc, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("tools-golang cannot read our document: %v\n%s", err, raw)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("spdxlib: %v", err)
	}
	if doc.DocumentNamespace != NamespacePrefix+strings.Repeat("f", 64) || doc.DocumentName != "sh" {
		t.Errorf("namespace %q name %q", doc.DocumentNamespace, doc.DocumentName)
	}
	if doc.CreationInfo.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("created %q, want SOURCE_DATE_EPOCH 1700000000", doc.CreationInfo.Created)
	}
	if len(doc.Files) != len(contents) {
		t.Fatalf("%d files, want %d (regular files only)", len(doc.Files), len(contents))
	}
	var names []string
	for _, f := range doc.Files {
		names = append(names, f.FileName)
		body, ok := contents[strings.TrimPrefix(f.FileName, ".")]
		if !ok {
			t.Errorf("unexpected file %s", f.FileName)
			continue
		}
		s1, s256 := sha1.Sum([]byte(body)), sha256.Sum256([]byte(body))
		want := []common.Checksum{{Algorithm: common.SHA1, Value: hex.EncodeToString(s1[:])}, {Algorithm: common.SHA256, Value: hex.EncodeToString(s256[:])}}
		if len(f.Checksums) != 2 || f.Checksums[0] != want[0] || f.Checksums[1] != want[1] {
			t.Errorf("%s: checksums %v, want %v", f.FileName, f.Checksums, want)
		}
	}
	if got := strings.Join(names, " "); got != "./app/main.js ./bin/sh ./etc/hosts ./etc/motd ./etc/os-release ./usr/lib/libz-copy ./usr/lib/libz.so.1" {
		t.Errorf("files not in path order: %s", got)
	}

	pkgs := map[common.ElementID]*spdx.Package{}
	for _, p := range doc.Packages {
		pkgs[p.PackageSPDXIdentifier] = p
	}
	from := map[string]string{} // file name → the package name it is GENERATED_FROM
	fileName := map[common.ElementID]string{}
	for _, f := range doc.Files {
		fileName[f.FileSPDXIdentifier] = f.FileName
	}
	contains := 0
	for _, r := range doc.Relationships {
		switch r.Relationship {
		case common.TypeRelationshipGeneratedFrom:
			from[fileName[r.RefA.ElementRefID]] = pkgs[r.RefB.ElementRefID].PackageName
		case common.TypeRelationshipContains:
			if r.RefA.ElementRefID == appID {
				contains++
			}
		}
	}
	if contains != len(contents) {
		t.Errorf("the app package CONTAINS %d files, want %d", contains, len(contents))
	}
	for f, want := range map[string]string{
		"./bin/sh":            "reg.example/base:1 layer " + layer1.Layer,
		"./etc/os-release":    "reg.example/base:1 layer " + layer2.Layer,
		"./app/main.js":       "build context",
		"./etc/motd":          "Unifile",
		"./etc/hosts":         "uni",
		"./usr/lib/libz.so.1": "host",
	} {
		if from[f] != want {
			t.Errorf("%s GENERATED_FROM %q, want %q", f, from[f], want)
		}
	}
	img := pkgs["Package-image-1"]
	if img == nil || img.PackageName != "reg.example/base:1" || len(img.PackageChecksums) != 1 || img.PackageChecksums[0].Value != strings.Repeat("a", 64) {
		t.Fatalf("base image package: %+v", img)
	}
	if len(img.PackageExternalReferences) != 1 || img.PackageExternalReferences[0].Locator != "pkg:oci/base@sha256%3A"+strings.Repeat("a", 64)+"?repository_url=reg.example/base" {
		t.Errorf("purl: %+v", img.PackageExternalReferences)
	}
	k := pkgs[kernelID]
	if k == nil || k.PackageVersion != "6.1.0-test" || k.PackageChecksums[0].Value != strings.Repeat("b", 64) {
		t.Errorf("kernel package: %+v", k)
	}
	for _, f := range doc.Files {
		if f.FileName == "./usr/lib/libz.so.1" && !(strings.HasPrefix(f.FileComment, "origin: host /") && strings.HasSuffix(f.FileComment, "/libz.so.1\nsize: 500000")) {
			t.Errorf("%s: comment %q", f.FileName, f.FileComment)
		}
	}
}

// Two builds of the same inputs give the same bytes; another rootfs
// digest gives another namespace.
func TestDeterministic(t *testing.T) {
	tree, _ := testTree(t)
	in := testInput(tree)
	a, b := writeDoc(t, in), writeDoc(t, in)
	if !bytes.Equal(a, b) {
		t.Fatal("two documents of the same inputs differ")
	}
	in.Rootfs.Digest = "sha256:" + strings.Repeat("e", 64)
	if c := writeDoc(t, in); bytes.Equal(a, c) || !bytes.Contains(c, []byte(NamespacePrefix+strings.Repeat("e", 64))) {
		t.Error("the namespace does not follow the rootfs digest")
	}
}

// A FROM scratch image with only what uni writes still gets a valid
// document, named after the app.
func TestScratchImage(t *testing.T) {
	tree := rootfs.NewTree()
	if err := tree.Add(rootfs.Entry{Path: "/hello", Mode: 0o755, Data: []byte("\x7fELF"), Origin: rootfs.Origin{Kind: rootfs.OriginContext, Path: "hello"}}); err != nil {
		t.Fatal(err)
	}
	in := testInput(tree)
	in.Name = "hello-go"
	raw := writeDoc(t, in)
	doc, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("spdxlib: %v", err)
	}
	if doc.DocumentName != "hello-go" || len(doc.Files) != 1 || doc.Files[0].FileName != "./hello" {
		t.Errorf("name %q files %+v", doc.DocumentName, doc.Files)
	}
	for _, p := range doc.Packages {
		if strings.HasPrefix(string(p.PackageSPDXIdentifier), "Package-image") || p.PackageSPDXIdentifier == hostID {
			t.Errorf("a scratch image names package %s", p.PackageName)
		}
	}
	rows := Summarize(doc)
	if len(rows) != 1 || rows[0] != (Row{Origin: "build context", Files: 1, Bytes: 4}) {
		t.Errorf("summary %+v", rows)
	}
}

func TestSummarize(t *testing.T) {
	tree, _ := testTree(t)
	doc, err := Read(bytes.NewReader(writeDoc(t, testInput(tree))))
	if err != nil {
		t.Fatal(err)
	}
	got := Summarize(doc)
	want := []Row{
		{"host", 2, 1000000},
		{"build context", 1, 15},
		{"reg.example/base:1 layer " + layer2.Layer, 1, 8},
		{"reg.example/base:1 layer " + layer1.Layer, 1, 5},
		{"Unifile", 1, 3},
		{"uni", 1, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("summary %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestBuildStopsWhenCancelled(t *testing.T) {
	tree, _ := testTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, testInput(tree)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	tree := rootfs.NewTree()
	gone := filepath.Join(t.TempDir(), "gone")
	if err := tree.Add(rootfs.Entry{Path: "/gone", Mode: 0o644, HostPath: gone, Size: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), testInput(tree))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "/gone") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestPURL(t *testing.T) {
	d := "sha256:" + strings.Repeat("c", 64)
	for ref, want := range map[string]string{
		"localhost:5000/team/App:v1": "pkg:oci/app@sha256%3A" + strings.Repeat("c", 64) + "?repository_url=localhost:5000/team/app",
		"alpine@" + d:                "pkg:oci/alpine@sha256%3A" + strings.Repeat("c", 64) + "?repository_url=alpine",
		"localhost:5000/x":           "pkg:oci/x@sha256%3A" + strings.Repeat("c", 64) + "?repository_url=localhost:5000/x",
	} {
		if got := PURL(ref, d); got != want {
			t.Errorf("PURL(%q) = %q, want %q", ref, got, want)
		}
	}
	if got := PURL("x", ""); got != "" {
		t.Errorf("no digest: %q", got)
	}
}
