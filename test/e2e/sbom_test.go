package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// sbomOf reads sbom.spdx.json of the layout out with tools-golang's reader.
func sbomOf(t *testing.T, out string) *spdx.Document {
	t.Helper()
	f, err := os.Open(filepath.Join(out, spec.SBOMFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := spdxjson.Read(f)
	if err != nil {
		t.Fatalf("tools-golang cannot read %s: %v", spec.SBOMFile, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Fatalf("spdxVersion %q", doc.SPDXVersion)
	}
	return doc
}

// sbomFile is one file of a document with what it says about it.
type sbomFile struct {
	comment string
	sha256  string
	from    string // the name of the package it is GENERATED_FROM
}

func sbomFiles(doc *spdx.Document) map[string]sbomFile {
	pkgs := map[common.ElementID]string{}
	for _, p := range doc.Packages {
		pkgs[p.PackageSPDXIdentifier] = p.PackageName
	}
	from := map[common.ElementID]string{}
	for _, r := range doc.Relationships {
		if r.Relationship == common.TypeRelationshipGeneratedFrom {
			from[r.RefA.ElementRefID] = pkgs[r.RefB.ElementRefID]
		}
	}
	out := map[string]sbomFile{}
	for _, f := range doc.Files {
		sf := sbomFile{comment: f.FileComment, from: from[f.FileSPDXIdentifier]}
		for _, c := range f.Checksums {
			if c.Algorithm == common.SHA256 {
				sf.sha256 = c.Value
			}
		}
		out[strings.TrimPrefix(f.FileName, ".")] = sf
	}
	return out
}

// regularFiles lists the regular files of a squashfs image, with
// squashfs-tools as the oracle.
func regularFiles(t *testing.T, img string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(unsquashfsList(t, img), "\n") {
		if !strings.HasPrefix(line, "-") {
			continue
		}
		f := strings.Fields(line)
		out = append(out, f[len(f)-1])
	}
	sort.Strings(out)
	return out
}

func sha256sum(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatalf("sha256sum %s: %v", p, err)
	}
	return strings.Fields(string(out))[0]
}

// hostOrigin matches the comment of a file taken from the build machine.
var hostOrigin = regexp.MustCompile(`^origin: host (/\S+)\n`)

// TestSBOMHelloNode: every build of hello-node (FROM host) writes an SBOM
// naming every regular file of rootfs.img, node and its libraries with the
// host paths they came from (whose sha256sum matches), hi.js with its
// context path; two builds give the same bytes; uni sbom prints it.
func TestSBOMHelloNode(t *testing.T) {
	testtool.NeedDownload(t, "the default kernel package (first build)")
	testtool.Need(t, "unsquashfs", "sha256sum")
	root := repoRoot(t)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	mustUni(t, root, "build", "-o", a, "example/hello-node")
	mustUni(t, root, "build", "-o", b, "example/hello-node")
	x, err1 := os.ReadFile(filepath.Join(a, spec.SBOMFile))
	y, err2 := os.ReadFile(filepath.Join(b, spec.SBOMFile))
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s differs between two builds (%v %v)", spec.SBOMFile, err1, err2)
	}

	doc := sbomOf(t, a)
	files := sbomFiles(doc)
	var listed []string
	for p := range files {
		listed = append(listed, p)
	}
	sort.Strings(listed)
	if got, want := strings.Join(listed, "\n"), strings.Join(regularFiles(t, filepath.Join(a, spec.RootfsFile)), "\n"); got != want {
		t.Fatalf("the SBOM lists\n%s\nrootfs.img holds\n%s", got, want)
	}

	// The SBOM describes the image: config.json does not record it, the
	// document names rootfs.img (the sha256sum of the file itself).
	var cfg spec.ImageConfig
	raw, _ := os.ReadFile(filepath.Join(a, spec.ConfigFile))
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["sbom"]; ok || bytes.Contains(raw, []byte(spec.SBOMFile)) {
		t.Errorf("config.json records the SBOM:\n%s", raw)
	}
	if want := "https://uniforge.dev/spdx/" + sha256sum(t, filepath.Join(a, spec.RootfsFile)); doc.DocumentNamespace != want || cfg.Rootfs.Digest != "sha256:"+strings.TrimPrefix(want, "https://uniforge.dev/spdx/") {
		t.Errorf("namespace %q, rootfs %s, want %s", doc.DocumentNamespace, cfg.Rootfs.Digest, want)
	}
	var app *spdx.Package
	for _, p := range doc.Packages {
		if p.PackageSPDXIdentifier == "Package-app" {
			app = p
		}
	}
	if app == nil || len(app.PackageChecksums) != 1 || "sha256:"+app.PackageChecksums[0].Value != cfg.Rootfs.Digest {
		t.Errorf("the package the SBOM describes: %+v, want SHA256 %s", app, cfg.Rootfs.Digest)
	}
	if insp := mustUni(t, "", "inspect", a); !regexp.MustCompile(`(?m)^sbom\s+sbom\.spdx\.json .*describing this rootfs\.img$`).MatchString(insp) {
		t.Errorf("uni inspect does not show the SBOM:\n%s", insp)
	}

	// A layout from before: config.json records the SBOM's digest. It is
	// still read (the field ignored), and its SBOM still checked. The SBOM
	// of another rootfs.img is refused by uni sbom, as uni run refuses it.
	old := bytes.Replace(raw, []byte(`"build":`), []byte(`"sbom": {"digest": "sha256:`+sha256sum(t, filepath.Join(b, spec.SBOMFile))+`", "size": `+fileSize(t, filepath.Join(b, spec.SBOMFile))+`},
  "build":`), 1)
	writeFiles(t, b, map[string]string{spec.ConfigFile: string(old)})
	if got := mustUni(t, "", "sbom", b); got != string(x) {
		t.Error("uni sbom of a layout whose config.json records the SBOM (as uni wrote before)")
	}
	other := bytes.ReplaceAll(y, []byte(strings.TrimPrefix(cfg.Rootfs.Digest, "sha256:")), []byte(strings.Repeat("0", 64)))
	writeFiles(t, b, map[string]string{spec.SBOMFile: string(other)})
	if out, st := uni(t, "", "sbom", b); st == 0 || !strings.Contains(out, "does not match config.json") {
		t.Errorf("uni sbom of another rootfs.img's SBOM: exit %d\n%s", st, out)
	}

	node := cfg.Entrypoint[0]
	checkHost := func(p string) {
		t.Helper()
		f, ok := files[p]
		if !ok {
			t.Errorf("the SBOM does not name %s", p)
			return
		}
		m := hostOrigin.FindStringSubmatch(f.comment)
		if m == nil || f.from != "host" {
			t.Errorf("%s: comment %q, generated from %q; want a host origin", p, f.comment, f.from)
			return
		}
		if sum := sha256sum(t, m[1]); sum != f.sha256 {
			t.Errorf("%s: sha256 %s, but its host file %s has %s", p, f.sha256, m[1], sum)
		}
	}
	checkHost(node)
	libs := 0
	for p := range files {
		if strings.Contains(p, ".so") {
			checkHost(p)
			libs++
		}
		if strings.HasPrefix(filepath.Base(p), "libc.so") {
			t.Logf("%s: %s", p, strings.SplitN(files[p].comment, "\n", 2)[0])
		}
	}
	if libs == 0 {
		t.Error("the SBOM names no shared library of node")
	}
	if f := files["/app/hi.js"]; f.comment != "origin: context hi.js\nsize: "+fileSize(t, filepath.Join(root, "example/hello-node/hi.js")) || f.from != "build context" {
		t.Errorf("/app/hi.js: %+v", f)
	}

	printed := mustUni(t, "", "sbom", a)
	if printed != string(x) {
		t.Error("uni sbom does not print sbom.spdx.json")
	}
	summary := mustUni(t, "", "sbom", "--summary", a)
	total := regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+total$`).FindStringSubmatch(summary)
	if total == nil || total[1] != strconv.Itoa(len(files)) || !regexp.MustCompile(`(?m)\s+host$`).MatchString(summary) {
		t.Errorf("uni sbom --summary (%d files):\n%s", len(files), summary)
	}
	// Pushed, the SBOM travels as a referrer of the image, and uni sbom
	// REF fetches the same bytes back.
	ref := startRegistry(t) + "/apps/hello-node:1"
	mustUni(t, "", "push", a, ref)
	if fetched := mustUni(t, "", "sbom", ref); fetched != string(x) {
		t.Error("uni sbom REF does not give back the pushed sbom.spdx.json")
	}
}

func fileSize(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(fi.Size(), 10)
}

// TestSBOMRegistryBaseImage: the files of an image built FROM a base image
// in a real registry name the image, its manifest digest and the layer
// (diff id) each came from.
func TestSBOMRegistryBaseImage(t *testing.T) {
	testtool.Need(t, "gcc")
	addr := startRegistry(t)
	layers := baseLayers(t, cProgram(t, closureApp), true)
	ref := pushImage(t, addr, "test/sbom:1", v1.Config{Entrypoint: []string{"app"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}, layers...)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	var diffIDs []string
	for _, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		diffIDs = append(diffIDs, d.String())
	}
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{"Unifile": "FROM " + ref + "\nMEMORY 96M\n"})
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")

	doc := sbomOf(t, out)
	files := sbomFiles(doc)
	for p, layer := range map[string]string{
		"/usr/bin/app-hardlink":          diffIDs[1],
		libDir + "/libc.so.6":            diffIDs[0],
		libDir + "/ld-linux-x86-64.so.2": diffIDs[0],
	} {
		f, ok := files[p]
		if !ok {
			t.Errorf("the SBOM does not name %s", p)
			continue
		}
		wantComment := "origin: base-image " + ref + "@" + desc.Digest.String() + " layer " + layer + "\n"
		if !strings.HasPrefix(f.comment, wantComment) || f.from != ref+" layer "+layer {
			t.Errorf("%s: comment %q, generated from %q; want %q", p, f.comment, f.from, wantComment)
		}
	}
	var img *spdx.Package
	for _, p := range doc.Packages {
		if p.PackageName == ref {
			img = p
		}
	}
	if img == nil || len(img.PackageChecksums) != 1 || "sha256:"+img.PackageChecksums[0].Value != desc.Digest.String() {
		t.Fatalf("no package for %s with its manifest digest %s: %+v", ref, desc.Digest, img)
	}
	if len(img.PackageExternalReferences) != 1 || !strings.HasPrefix(img.PackageExternalReferences[0].Locator, "pkg:oci/sbom@sha256%3A") {
		t.Errorf("purl: %+v", img.PackageExternalReferences)
	}
}
