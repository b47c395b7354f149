// Package sbom writes the SPDX 2.3 document of an image's rootfs.img
// (sbom.spdx.json of the image layout): every regular file with its SHA1
// and SHA256 and where it came from (a base image's layer, the build host,
// the build context, the Unifile, or uni itself; under BuildKit, the last
// stage or its base), plus the kernel bundle the image boots. The document
// is built with spdx/tools-golang's v2.3 types and written by its JSON
// writer; it is reproducible: the same tree, rootfs digest and
// SOURCE_DATE_EPOCH give the same bytes. It describes the image the way an
// attestation names its subject: its namespace ends with rootfs.img's
// digest (Subject reads it back), and config.json does not record it.
package sbom

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// MediaType is the media type of sbom.spdx.json (an OCI referrer's
// artifactType and its blob's media type).
const MediaType = "application/spdx+json"

// NamespacePrefix starts every document's namespace; the rootfs digest ends it.
const NamespacePrefix = "https://uniforge.dev/spdx/"

// noAssertion is SPDX's "we say nothing about this".
const noAssertion = "NOASSERTION"

// Element ids of the packages every document may hold.
const (
	appID       = common.ElementID("Package-app")
	kernelID    = common.ElementID("Package-kernel")
	hostID      = common.ElementID("Package-host")
	contextID   = common.ElementID("Package-context")
	unifileID   = common.ElementID("Package-unifile")
	generatedID = common.ElementID("Package-uni")
	// Under BuildKit: the last stage's base when it is not an image, and
	// what the last stage wrote over its base.
	stageID      = common.ElementID("Package-stage")
	stageAddedID = common.ElementID("Package-stage-added")
)

// Input is what a document describes.
type Input struct {
	// Name is the app package's name (default: the base name of the
	// entrypoint's program).
	Name       string
	Entrypoint []string
	Root       *rootfs.Tree   // the tree rootfs.img was written from
	Rootfs     spec.RootfsRef // rootfs.img's digest: the document's namespace
	Kernel     spec.KernelRef // the kernel bundle
	Created    int64          // SOURCE_DATE_EPOCH
	Tool       string         // "uni <version>"
}

// Build returns the document of in. It reads every regular file once,
// several at a time; ctx being done stops it.
func Build(ctx context.Context, in Input) (*spdx.Document, error) {
	if in.Root == nil {
		in.Root = rootfs.NewTree()
	}
	var files []*rootfs.Entry
	if err := in.Root.Walk(func(e *rootfs.Entry) error {
		if e.IsRegular() {
			files = append(files, e)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	sums, err := hashAll(ctx, files)
	if err != nil {
		return nil, err
	}

	name := in.Name
	if name == "" && len(in.Entrypoint) > 0 {
		name = in.Entrypoint[0][strings.LastIndex(in.Entrypoint[0], "/")+1:]
	}
	if name == "" {
		name = "app"
	}
	tool := strings.ReplaceAll(strings.TrimSpace(in.Tool), " ", "-")
	if tool == "" {
		tool = "uni"
	}
	rootHex := strings.TrimPrefix(in.Rootfs.Digest, "sha256:")
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: NamespacePrefix + rootHex,
		DocumentComment:   "The files of rootfs.img (" + in.Rootfs.Digest + ") and where each came from.",
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  time.Unix(in.Created, 0).UTC().Format(time.RFC3339),
		},
	}
	app := &spdx.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   appID,
		PackageDownloadLocation: noAssertion,
		FilesAnalyzed:           true,
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: rootHex}},
		PackageComment:          "The unikernel's root filesystem, rootfs.img.",
		PackageCopyrightText:    noAssertion,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PrimaryPackagePurpose:   "OPERATING-SYSTEM",
	}
	doc.Packages = append(doc.Packages, app)
	rel := func(a, b common.ElementID, kind string) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)), Relationship: kind})
	}
	rel("DOCUMENT", appID, common.TypeRelationshipDescribe)

	if in.Kernel.Name != "" || in.Kernel.Digest != "" {
		k := originPackage(kernelID, "kernel "+in.Kernel.Name, "The kernel bundle the image boots (its modules are in the initrd, not in rootfs.img).")
		k.PackageVersion = in.Kernel.Release
		if hex := strings.TrimPrefix(in.Kernel.Digest, "sha256:"); hex != "" {
			k.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: hex}}
		}
		doc.Packages = append(doc.Packages, k)
		rel(kernelID, appID, common.TypeRelationshipRuntimeDependencyOf)
	}

	origins := newOriginPackages(doc, rel)
	var sha1s []string
	for i, e := range files {
		s := sums[i]
		id := common.ElementID(fmt.Sprintf("File-%d", i+1))
		doc.Files = append(doc.Files, &spdx.File{
			FileName:           "." + e.Path,
			FileSPDXIdentifier: id,
			Checksums: []common.Checksum{
				{Algorithm: common.SHA1, Value: s.sha1},
				{Algorithm: common.SHA256, Value: s.sha256},
			},
			LicenseConcluded:  noAssertion,
			FileCopyrightText: noAssertion,
			FileComment:       Comment(e.Origin, e.Size),
		})
		sha1s = append(sha1s, s.sha1)
		rel(appID, id, common.TypeRelationshipContains)
		if from := origins.of(e.Origin); from != "" {
			rel(id, from, common.TypeRelationshipGeneratedFrom)
		}
	}
	app.PackageVerificationCode = &common.PackageVerificationCode{Value: verificationCode(sha1s)}
	return doc, nil
}

// Comment is a file's comment in the document: its origin and size, one
// per line ("origin: host /usr/bin/node", "size: 1234"). Summarize reads
// the size back.
func Comment(o rootfs.Origin, size int64) string {
	return fmt.Sprintf("origin: %s\nsize: %d", o, size)
}

// originPackages gives each origin of a file the package it is
// GENERATED_FROM, added to the document on first use.
type originPackages struct {
	doc    *spdx.Document
	rel    func(a, b common.ElementID, kind string)
	have   map[common.ElementID]bool
	images map[string]int // "ref@digest" → number, in order of first use
	layers map[string]int // "ref@digest layer" → number within its image
}

func newOriginPackages(doc *spdx.Document, rel func(a, b common.ElementID, kind string)) *originPackages {
	return &originPackages{doc: doc, rel: rel, have: map[common.ElementID]bool{}, images: map[string]int{}, layers: map[string]int{}}
}

func originPackage(id common.ElementID, name, comment string) *spdx.Package {
	return &spdx.Package{
		PackageName:               name,
		PackageSPDXIdentifier:     id,
		PackageDownloadLocation:   noAssertion,
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageComment:            comment,
	}
}

// of returns the package for o ("" for an unknown origin).
func (p *originPackages) of(o rootfs.Origin) common.ElementID {
	switch o.Kind {
	case rootfs.OriginHost:
		return p.once(hostID, "host", "FROM host: files taken from the build machine's root; each file's comment names its host path.")
	case rootfs.OriginContext:
		return p.once(contextID, "build context", "COPY from the build context; each file's comment names its path in the context.")
	case rootfs.OriginUnifile:
		return p.once(unifileID, "Unifile", "Inline files (COPY heredocs) of the Unifile; each file's comment names the line.")
	case rootfs.OriginGenerated:
		return p.once(generatedID, "uni", "Files uni writes into every root (/etc/resolv.conf and /etc/hosts, bound over at boot; a minimal nsswitch.conf).")
	case rootfs.OriginBaseImage:
		return p.layer(o)
	case rootfs.OriginStage:
		if o.Image == "" {
			return p.once(stageID, "base stage", "The last stage's base as BuildKit built it: another stage of the Unifile, or scratch; its files are not traced further back.")
		}
		return imageID(p.image(o)) // no layer: BuildKit shows the assembler the stage's root only
	case rootfs.OriginStageAdded:
		return p.once(stageAddedID, "last stage", "Files the last stage wrote over its base, by COPY, ADD or RUN (BuildKit's diff of the stage over its base does not say which).")
	}
	return ""
}

func (p *originPackages) once(id common.ElementID, name, comment string) common.ElementID {
	if !p.have[id] {
		p.have[id] = true
		p.doc.Packages = append(p.doc.Packages, originPackage(id, name, comment))
	}
	return id
}

// image returns the number of o's image package (imageID), adding the
// package on first use: the app is its DESCENDANT_OF.
func (p *originPackages) image(o rootfs.Origin) int {
	imgKey := o.Image + "@" + o.ImageDigest
	n, ok := p.images[imgKey]
	if !ok {
		n = len(p.images) + 1
		p.images[imgKey] = n
		img := originPackage(imageID(n), o.Image, "Base image "+o.Image+" ("+o.ImageDigest+").")
		img.PackageVersion = o.ImageDigest
		if hex, ok := strings.CutPrefix(o.ImageDigest, "sha256:"); ok {
			img.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: hex}}
		}
		if purl := PURL(o.Image, o.ImageDigest); purl != "" {
			img.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl}}
		}
		p.doc.Packages = append(p.doc.Packages, img)
		p.rel(appID, imageID(n), common.TypeRelationshipDescendantOf)
	}
	return n
}

// layer returns the package of o's layer, adding it and its image's
// package on first use: the image CONTAINS the layer.
func (p *originPackages) layer(o rootfs.Origin) common.ElementID {
	n := p.image(o)
	imgKey := o.Image + "@" + o.ImageDigest
	layerKey := imgKey + " " + o.Layer
	m, ok := p.layers[layerKey]
	if !ok {
		m = 1
		for k := range p.layers {
			if strings.HasPrefix(k, imgKey+" ") {
				m++
			}
		}
		p.layers[layerKey] = m
		l := originPackage(layerID(n, m), o.Image+" layer "+o.Layer, "A layer of "+o.Image+", by its diff id (the sha256 of its uncompressed tar).")
		l.PackageVersion = o.Layer
		if hex, ok := strings.CutPrefix(o.Layer, "sha256:"); ok {
			l.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: hex}}
		}
		p.doc.Packages = append(p.doc.Packages, l)
		p.rel(imageID(n), layerID(n, m), common.TypeRelationshipContains)
	}
	return layerID(n, m)
}

func imageID(n int) common.ElementID { return common.ElementID(fmt.Sprintf("Package-image-%d", n)) }
func layerID(n, m int) common.ElementID {
	return common.ElementID(fmt.Sprintf("Package-image-%d-layer-%d", n, m))
}

// PURL is the package URL of an OCI image (purl type "oci"): its last
// path component as the name, the manifest digest as the version, and the
// repository as repository_url. It is "" without a sha256 digest.
func PURL(ref, digest string) string {
	if !strings.HasPrefix(digest, "sha256:") {
		return ""
	}
	repo := ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i] // a tag
	}
	name := strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
	if name == "" {
		return ""
	}
	return "pkg:oci/" + name + "@sha256%3A" + strings.TrimPrefix(digest, "sha256:") + "?repository_url=" + strings.ToLower(repo)
}

// verificationCode is SPDX's package verification code: the SHA1 of the
// files' SHA1s, sorted and concatenated.
func verificationCode(sha1s []string) string {
	s := append([]string(nil), sha1s...)
	sort.Strings(s)
	h := sha1.New()
	for _, v := range s {
		io.WriteString(h, v)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type sums struct{ sha1, sha256 string }

// hashAll hashes every file, streaming, on as many goroutines as there are
// CPUs; a host file reached by several paths is read once.
func hashAll(ctx context.Context, files []*rootfs.Entry) ([]sums, error) {
	out := make([]sums, len(files))
	var jobs [][]int // indexes of files with the same bytes; the first is read
	jobOf := map[string]int{}
	for i, e := range files {
		if e.HostPath != "" {
			if j, ok := jobOf[e.HostPath]; ok {
				jobs[j] = append(jobs[j], i)
				continue
			}
			jobOf[e.HostPath] = len(jobs)
		}
		jobs = append(jobs, []int{i})
	}
	type job struct {
		n   int
		idx []int
	}
	ch := make(chan job)
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				s, err := hashEntry(ctx, files[j.idx[0]])
				if err != nil {
					errs[j.n] = err
					continue
				}
				for _, i := range j.idx {
					out[i] = s
				}
			}
		}()
	}
	for n, idx := range jobs {
		if ctx.Err() != nil {
			break
		}
		ch <- job{n, idx}
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hashEntry(ctx context.Context, e *rootfs.Entry) (sums, error) {
	r, err := e.Open()
	if err != nil {
		return sums{}, fmt.Errorf("sbom: %s: %w", e.Path, err)
	}
	defer r.Close()
	h1, h256 := sha1.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(h1, h256), ctxio.Reader(ctx, r)); err != nil {
		return sums{}, fmt.Errorf("sbom: %s: reading %s: %w", e.Path, e.HostPath, err)
	}
	return sums{hex.EncodeToString(h1.Sum(nil)), hex.EncodeToString(h256.Sum(nil))}, nil
}

// Write writes doc as indented JSON.
func Write(w io.Writer, doc *spdx.Document) error {
	return spdxjson.Write(doc, w, spdxjson.Indent("  "))
}

// WriteFile builds the document of in and writes it at p, under a
// temporary name renamed when complete.
func WriteFile(ctx context.Context, p string, in Input) error {
	doc, err := Build(ctx, in)
	if err != nil {
		return err
	}
	return atomicfile.Write(p, 0o644, func(w io.Writer) error { return Write(w, doc) })
}

// Read parses an SPDX 2.3 JSON document.
func Read(r io.Reader) (*spdx.Document, error) {
	var doc spdx.Document
	if err := spdxjson.ReadInto(r, &doc); err != nil {
		return nil, err
	}
	if doc.SPDXVersion != spdx.Version {
		return nil, fmt.Errorf("%s, want %s", doc.SPDXVersion, spdx.Version)
	}
	return &doc, nil
}

// ReadFile is Read of the file at p.
func ReadFile(p string) (*spdx.Document, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return doc, nil
}
