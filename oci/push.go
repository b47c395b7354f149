package oci

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Pushed says what Push wrote.
type Pushed struct {
	Ref      string  // repo:tag as pushed
	Index    v1.Hash // what the tag names: the index, other platforms' entries kept
	Manifest v1.Hash // the image manifest of the layout's platform
	SBOM     *v1.Hash
	Uploaded int // blobs sent (not already there, not mounted)
}

// Push writes the layout l to the registry as ref (a tag): its blobs, its
// image manifest, the index the tag names (merged into the one it names
// already when that is ours: other platforms' entries are kept, the
// layout's platform's replaced), and sbom.spdx.json, when the layout holds
// one, as a referrer of the index (the SBOM is no blob of the image: it
// describes it, and Verify checks that it describes this rootfs.img). l is
// verified while the blobs go up, and no manifest is written unless it
// passes. Blobs are streamed from their files; one the registry has
// already is not sent, and one another repository of WithMountFrom has is
// mounted.
func Push(ctx context.Context, l *layout.Layout, ref string, opts ...Option) (*Pushed, error) {
	o := makeOptions(opts)
	r, err := o.parseRef(ref)
	if err != nil {
		return nil, err
	}
	tag, ok := r.(name.Tag)
	if !ok {
		return nil, fmt.Errorf("push %s: give a tag, not a digest: the digest is the artifact's own", ref)
	}
	// Verify runs while the blobs go up; the manifests are written only
	// once both have passed. rootfs.img, by far the largest file, is not
	// hashed twice: its upload checks it against the digest config.json
	// records (a blob the registry already has is that digest's bytes), so
	// Verify reads only its superblock.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	verified := make(chan error, 1)
	go func() {
		if l.Verified() {
			verified <- nil
			return
		}
		cfg := l.Config()
		verified <- l.Verify(ctx, layout.WithCheckedFiles(map[string]spec.FileRef{
			spec.RootfsFile: {Digest: cfg.Rootfs.Digest, Size: cfg.Rootfs.Size},
		}))
	}()
	pushed, err := push(ctx, l, tag, o)
	if err != nil && !errors.Is(err, ErrDigest) {
		// A file that differs from config.json is better told by Verify;
		// for any other failure it need not finish.
		cancel()
	}
	if verr := <-verified; verr != nil && !(err != nil && errors.Is(verr, context.Canceled)) {
		return nil, verr
	}
	if err != nil {
		return nil, err
	}
	return pushed(ctx)
}

// push uploads the blobs and returns what writes the manifests.
func push(ctx context.Context, l *layout.Layout, tag name.Tag, o options) (func(context.Context) (*Pushed, error), error) {
	ref := tag.String()
	files, err := layoutFiles(ctx, l, o.disk)
	if err != nil {
		return nil, err
	}
	if o.disk && !l.HasDisk() {
		return nil, fmt.Errorf("%s: --disk, but the layout has no %s (build with --disk)", l.Dir(), spec.DiskFile)
	}
	a, err := NewArtifact(l.Config(), files, o.disk)
	if err != nil {
		return nil, err
	}
	ropts := o.remoteOptions(ctx)
	p, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, err
	}
	rep := progress.New(o.log)
	out := &Pushed{Ref: tag.String(), Index: a.IndexDesc.Digest, Manifest: a.ManifestDesc.Digest}
	mounts, err := mountRepos(tag.Context(), o)
	if err != nil {
		return nil, err
	}
	sb, err := sbomBlob(ctx, l)
	if err != nil {
		return nil, err
	}
	// The index the tag will name is worked out (it reads what the tag
	// names now) while the blobs go up.
	type merged struct {
		idx *mergedIndex
		err error
	}
	mergedCh := make(chan merged, 1)
	go func() {
		idx, err := mergeIndex(ctx, tag, a, ropts)
		mergedCh <- merged{idx, err}
	}()
	// Three blobs at a time, as oras and pull, the largest first (g.Go
	// waits for a slot, so they start in this order); the first failure
	// stops the others. The SBOM's blobs go up with them; its manifest is
	// written only once Verify passed.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	if rep.Terminal() {
		g.SetLimit(1) // one progress bar at a time on a terminal
	}
	var uploaded atomic.Int32
	sent := map[v1.Hash]bool{}
	var blobs []Blob
	for _, b := range a.Blobs {
		if !sent[b.Desc.Digest] {
			sent[b.Desc.Digest] = true
			blobs = append(blobs, b)
		}
	}
	if sb != nil {
		blobs = append(blobs, *sb)
	}
	slices.SortStableFunc(blobs, func(x, y Blob) int { return cmp.Compare(y.Desc.Size, x.Desc.Size) })
	for _, b := range blobs {
		g.Go(func() error {
			if b.Name == spec.SBOMFile {
				if err := uploadSBOMBlobs(gctx, p, tag.Context(), b, rep, ropts); err != nil {
					return fmt.Errorf("push %s: %s: %w", ref, b.Name, err)
				}
				return nil // not a blob of the image: not counted
			}
			up, err := uploadBlob(gctx, p, tag.Context(), b, mounts, rep, ropts)
			if err != nil {
				return fmt.Errorf("push %s: %s: %w", ref, b.Name, err)
			}
			if up {
				uploaded.Add(1)
			}
			return nil
		})
	}
	err = g.Wait()
	m := <-mergedCh
	if err != nil {
		return nil, err
	}
	if m.err != nil {
		return nil, fmt.Errorf("push %s: index: %w", ref, m.err)
	}
	out.Uploaded = int(uploaded.Load())
	return func(ctx context.Context) (*Pushed, error) {
		return writeManifests(ctx, p, tag, a, m.idx, sb, out, rep, ropts)
	}, nil
}

// writeManifests writes the image manifest, the index idx (under the
// tag), and the SBOM's manifest when the layout has one (sb).
func writeManifests(ctx context.Context, p *remote.Pusher, tag name.Tag, a *Artifact, idx *mergedIndex, sb *Blob, out *Pushed, rep *progress.Reporter, ropts []remote.Option) (*Pushed, error) {
	ref := tag.String()
	if err := p.Put(ctx, tag.Context().Digest(a.ManifestDesc.Digest.String()), rawManifest{a.Manifest, types.OCIManifestSchema1}); err != nil {
		return nil, fmt.Errorf("push %s: manifest: %w", ref, err)
	}
	if err := p.Put(ctx, tag, rawManifest{idx.raw, types.OCIImageIndex}); err != nil {
		return nil, fmt.Errorf("push %s: index: %w", ref, err)
	}
	out.Index = idx.desc.Digest
	rep.Printf("pushed %s@%s", tag, idx.desc.Digest)
	if sb != nil {
		sbom, err := pushSBOM(ctx, p, tag, a, idx.desc, *sb, rep)
		if err != nil {
			return nil, fmt.Errorf("push %s: %s: %w", ref, spec.SBOMFile, err)
		}
		out.SBOM = sbom
	}
	if err := reattachSBOMs(ctx, p, tag, idx, rep, ropts); err != nil {
		return nil, fmt.Errorf("push %s: the other platforms' %s: %w", ref, spec.SBOMFile, err)
	}
	return out, nil
}

// mergedIndex is the index a push writes, and what it kept of the one the
// tag named before.
type mergedIndex struct {
	raw  []byte
	desc v1.Descriptor
	// prev is the index the tag named, when entries of other platforms
	// were kept from it (kept), to move their SBOMs to the new index.
	prev *v1.Descriptor
	kept []v1.Descriptor
}

// mergeIndex is the index for the tag: when the tag names an index of
// ours, its entries for other platforms are kept and the one for the
// layout's platform is replaced; otherwise the artifact's one-entry index.
// Entries are sorted by platform, and the index's annotations are those
// every entry's manifest shares, so the same layout pushed twice gives the
// same index whatever was pushed between.
func mergeIndex(ctx context.Context, tag name.Tag, a *Artifact, ropts []remote.Option) (*mergedIndex, error) {
	fresh := &mergedIndex{raw: a.Index, desc: a.IndexDesc}
	d, err := remote.Get(tag, ropts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return fresh, nil
	}
	if err != nil {
		return nil, err
	}
	if d.MediaType != types.OCIImageIndex || len(d.Manifest) > MaxManifestBytes {
		return fresh, nil // not an index of ours: the tag moves to the new one
	}
	var prev v1.IndexManifest
	if err := json.Unmarshal(d.Manifest, &prev); err != nil || prev.ArtifactType != ArtifactType {
		return fresh, nil
	}
	ours := a.ManifestDesc.Platform
	var mine v1.Manifest
	if err := json.Unmarshal(a.Manifest, &mine); err != nil {
		return nil, err
	}
	ann := maps.Clone(mine.Annotations)
	merged := &mergedIndex{prev: &d.Descriptor}
	for _, e := range prev.Manifests {
		if e.Platform != nil && samePlatform(*e.Platform, *ours) {
			continue
		}
		m, err := remote.Get(tag.Context().Digest(e.Digest.String()), ropts...)
		if err != nil {
			return nil, fmt.Errorf("the entry for %v of the index %s names: %w", e.Platform, tag, err)
		}
		var other v1.Manifest
		if len(m.Manifest) > MaxManifestBytes || json.Unmarshal(m.Manifest, &other) != nil {
			return nil, fmt.Errorf("the entry for %v of the index %s names: %w: not a manifest", e.Platform, tag, ErrInvalid)
		}
		maps.DeleteFunc(ann, func(k, v string) bool { return other.Annotations[k] != v })
		merged.kept = append(merged.kept, e)
	}
	if len(merged.kept) == 0 {
		return fresh, nil
	}
	entries := append(slices.Clone(merged.kept), a.ManifestDesc)
	slices.SortStableFunc(entries, func(x, y v1.Descriptor) int {
		return cmp.Or(cmp.Compare(platformKey(x), platformKey(y)), cmp.Compare(x.Digest.String(), y.Digest.String()))
	})
	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		ArtifactType:  ArtifactType,
		Manifests:     entries,
		Annotations:   ann,
	}
	if merged.raw, merged.desc, err = marshal(idx, types.OCIImageIndex); err != nil {
		return nil, err
	}
	return merged, nil
}

func samePlatform(a, b v1.Platform) bool {
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant
}

func platformKey(d v1.Descriptor) string {
	if d.Platform == nil {
		return ""
	}
	return d.Platform.String()
}

// reattachSBOMs moves the SBOMs of the platforms a merge kept from the
// previous index to the new one (their subject is the index the tag
// names): each is the same manifest with the new subject.
func reattachSBOMs(ctx context.Context, p *remote.Pusher, tag name.Tag, idx *mergedIndex, rep *progress.Reporter, ropts []remote.Option) error {
	if idx.prev == nil || idx.prev.Digest == idx.desc.Digest {
		return nil
	}
	kept := map[string]bool{}
	for _, e := range idx.kept {
		kept[e.Digest.String()] = true
	}
	refs, err := remote.Referrers(tag.Context().Digest(idx.prev.Digest.String()), append(ropts, remote.WithFilter("artifactType", SBOMMediaType))...)
	if err != nil {
		return err
	}
	im, err := refs.IndexManifest()
	if err != nil {
		return err
	}
	for _, r := range im.Manifests {
		describes := r.Annotations[AnnotationDescribes]
		if r.ArtifactType != SBOMMediaType || !kept[describes] {
			continue
		}
		d, err := remote.Get(tag.Context().Digest(r.Digest.String()), ropts...)
		if err != nil {
			return err
		}
		var m v1.Manifest
		if len(d.Manifest) > MaxManifestBytes || json.Unmarshal(d.Manifest, &m) != nil {
			return fmt.Errorf("SBOM manifest %s: %w: not a manifest", r.Digest, ErrInvalid)
		}
		m.Subject = &v1.Descriptor{MediaType: idx.desc.MediaType, Size: idx.desc.Size, Digest: idx.desc.Digest}
		raw, desc, err := marshal(m, types.OCIManifestSchema1)
		if err != nil {
			return err
		}
		if err := p.Put(ctx, tag.Context().Digest(desc.Digest.String()), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
			return err
		}
		rep.Printf("moved the %s of %s to the new index: %s@%s", spec.SBOMFile, describes, tag.Context(), desc.Digest)
	}
	return nil
}

// layoutFiles lists the files to push with their digests. The digests
// config.json records (which Verify checks meanwhile) are taken as they
// are; the others are hashed. Each upload hashes its file again as it
// streams it, so a file changed meanwhile fails the push.
func layoutFiles(ctx context.Context, l *layout.Layout, disk bool) ([]layout.File, error) {
	cfg := l.Config()
	known := map[string]*spec.FileRef{
		spec.RootfsFile: {Digest: cfg.Rootfs.Digest, Size: cfg.Rootfs.Size},
		spec.KernelFile: cfg.KernelFile,
		spec.InitrdFile: cfg.Initrd,
		spec.DiskFile:   cfg.Disk,
	}
	names := append([]string(nil), layout.Required...)
	if disk {
		names = append(names, spec.DiskFile)
	}
	var files []layout.File
	for _, n := range names {
		p := l.Path(n)
		if ref := known[n]; ref != nil {
			files = append(files, layout.File{Name: n, Path: p, Size: ref.Size, Digest: ref.Digest})
			continue
		}
		ref, err := layout.HashFile(ctx, p)
		if err != nil {
			return nil, err
		}
		files = append(files, layout.File{Name: n, Path: p, Size: ref.Size, Digest: ref.Digest})
	}
	return files, nil
}

// mountRepos are the repositories of WithMountFrom, on the pushed ref's
// registry.
func mountRepos(target name.Repository, o options) ([]name.Repository, error) {
	var out []name.Repository
	for _, s := range o.mountFrom {
		var nopts []name.Option
		if o.insecure {
			nopts = append(nopts, name.Insecure)
		}
		r, err := name.NewRepository(s, nopts...)
		if err != nil {
			return nil, fmt.Errorf("mount from %q: %w", s, err)
		}
		if r.RegistryStr() != target.RegistryStr() {
			return nil, fmt.Errorf("mount from %q: another registry than %s's", s, target)
		}
		if r.String() != target.String() {
			out = append(out, r)
		}
	}
	return out, nil
}

// uploadBlob sends one blob unless the repository has it or it can be
// mounted from one of mounts; it reports whether bytes were sent.
func uploadBlob(ctx context.Context, p *remote.Pusher, repo name.Repository, b Blob, mounts []name.Repository, rep *progress.Reporter, ropts []remote.Option) (bool, error) {
	fl := &fileLayer{ctx: ctx, b: b, rep: rep}
	var layer v1.Layer = fl
	for _, m := range mounts {
		rl, err := remote.Layer(m.Digest(b.Desc.Digest.String()), ropts...)
		if err != nil {
			return false, err
		}
		if ok, err := rl.(interface{ Exists() (bool, error) }).Exists(); err == nil && ok {
			layer = &remote.MountableLayer{Layer: fl, Reference: m.Digest(b.Desc.Digest.String())}
			break
		}
	}
	if err := p.Upload(ctx, repo, layer); err != nil {
		return false, err
	}
	sent := fl.opened.Load()
	if !sent {
		how := "already in the registry"
		if layer != v1.Layer(fl) {
			how = "mounted from " + layer.(*remote.MountableLayer).Reference.Context().String()
		}
		rep.Printf("%s: %s (%s)", b.Name, how, progress.Bytes(b.Desc.Size))
	}
	return sent, nil
}

// sbomBlob is the layout's sbom.spdx.json as a blob, nil when it has none.
func sbomBlob(ctx context.Context, l *layout.Layout) (*Blob, error) {
	path := l.Path(spec.SBOMFile)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	ref, err := layout.HashFile(ctx, path)
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(ref.Digest)
	if err != nil {
		return nil, err
	}
	return &Blob{Name: spec.SBOMFile, Path: path, Desc: v1.Descriptor{
		MediaType: SBOMMediaType, Size: ref.Size, Digest: h,
		Annotations: map[string]string{AnnotationTitle: spec.SBOMFile},
	}}, nil
}

// uploadSBOMBlobs sends the blobs of the SBOM's manifest: the SBOM and the
// empty config.
func uploadSBOMBlobs(ctx context.Context, p *remote.Pusher, repo name.Repository, b Blob, rep *progress.Reporter, ropts []remote.Option) error {
	if _, err := uploadBlob(ctx, p, repo, b, nil, rep, ropts); err != nil {
		return err
	}
	return p.Upload(ctx, repo, &bytesLayer{data: []byte("{}"), desc: emptyDescriptor()})
}

// pushSBOM writes the manifest of the SBOM b (its blobs sent by
// uploadSBOMBlobs) as a referrer of subject, the index: an artifact
// manifest that names the image manifest it describes. ggcr keeps the
// referrers tag schema (tag sha256-<hex>) up to date on a registry without
// the referrers API.
func pushSBOM(ctx context.Context, p *remote.Pusher, tag name.Tag, a *Artifact, subject v1.Descriptor, b Blob, rep *progress.Reporter) (*v1.Hash, error) {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  SBOMMediaType,
		Config:        emptyDescriptor(),
		Layers:        []v1.Descriptor{b.Desc},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest},
		Annotations:   map[string]string{AnnotationCreated: a.created(), AnnotationDescribes: a.ManifestDesc.Digest.String()},
	}
	raw, desc, err := marshal(m, types.OCIManifestSchema1)
	if err != nil {
		return nil, err
	}
	if err := p.Put(ctx, tag.Context().Digest(desc.Digest.String()), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
		return nil, err
	}
	rep.Printf("pushed %s as a referrer: %s@%s", spec.SBOMFile, tag.Context(), desc.Digest)
	return &desc.Digest, nil
}

func (a *Artifact) created() string {
	var m v1.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		return ""
	}
	return m.Annotations[AnnotationCreated]
}

// emptyDescriptor is the OCI empty JSON blob "{}", the config of an
// artifact that has none.
func emptyDescriptor() v1.Descriptor {
	sum := sha256.Sum256([]byte("{}"))
	return v1.Descriptor{
		MediaType: EmptyMediaType,
		Size:      2,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
	}
}

// rawManifest is a manifest as bytes, for remote.Pusher.Put.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// fileLayer is a blob read from its file when ggcr uploads it, never held
// in memory; the bytes are hashed on the way and a mismatch with the
// descriptor fails the upload.
type fileLayer struct {
	ctx    context.Context
	b      Blob
	rep    *progress.Reporter
	opened atomic.Bool
}

func (f *fileLayer) Digest() (v1.Hash, error)             { return f.b.Desc.Digest, nil }
func (f *fileLayer) DiffID() (v1.Hash, error)             { return f.b.Desc.Digest, nil }
func (f *fileLayer) Size() (int64, error)                 { return f.b.Desc.Size, nil }
func (f *fileLayer) MediaType() (types.MediaType, error)  { return f.b.Desc.MediaType, nil }
func (f *fileLayer) Uncompressed() (io.ReadCloser, error) { return f.Compressed() }
func (f *fileLayer) Compressed() (io.ReadCloser, error) {
	file, err := os.Open(f.b.Path)
	if err != nil {
		return nil, err
	}
	f.opened.Store(true)
	task := f.rep.Start("uploading", "uploaded", f.b.Name, f.b.Desc.Size)
	return &verifyReader{
		r: io.TeeReader(ctxio.Reader(f.ctx, file), task), c: file, h: sha256.New(),
		want: f.b.Desc, name: f.b.Name, task: task,
	}, nil
}

// verifyReader hashes what it reads and fails at EOF (or past the size)
// when the bytes are not the descriptor's.
type verifyReader struct {
	r    io.Reader
	c    io.Closer
	h    hash.Hash
	n    int64
	want v1.Descriptor
	name string
	task *progress.Task
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.Size {
		v.task.Fail()
		return n, fmt.Errorf("%s: %w: more than %d bytes", v.name, ErrDigest, v.want.Size)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); v.n != v.want.Size || got != v.want.Digest.Hex {
			v.task.Fail()
			return n, fmt.Errorf("%s: %w: %d bytes, sha256:%s (want %d bytes, %s)", v.name, ErrDigest, v.n, got, v.want.Size, v.want.Digest)
		}
		v.task.Done()
	}
	return n, err
}

func (v *verifyReader) Close() error {
	v.task.Fail()
	return v.c.Close()
}

// bytesLayer is a small blob held in memory (the empty config).
type bytesLayer struct {
	data []byte
	desc v1.Descriptor
}

func (b *bytesLayer) Digest() (v1.Hash, error)             { return b.desc.Digest, nil }
func (b *bytesLayer) DiffID() (v1.Hash, error)             { return b.desc.Digest, nil }
func (b *bytesLayer) Size() (int64, error)                 { return b.desc.Size, nil }
func (b *bytesLayer) MediaType() (types.MediaType, error)  { return b.desc.MediaType, nil }
func (b *bytesLayer) Uncompressed() (io.ReadCloser, error) { return b.Compressed() }
func (b *bytesLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}
