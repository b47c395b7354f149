package oci

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Resolved is a reference resolved to an image manifest of ours, checked
// by ParseManifest; nothing but manifests has been read.
type Resolved struct {
	Ref            name.Reference
	Index          []byte  // the index ref names; nil when it names the manifest
	IndexDigest    v1.Hash // zero when Index is nil
	ManifestRaw    []byte
	ManifestDigest v1.Hash
	Manifest       *v1.Manifest
	Files          []Blob // the manifest's layers, titles checked
	// ImageForm is set for the image form of docker buildx (a container
	// image whose tar layers hold the files); Files is then empty.
	ImageForm bool
}

// Resolve fetches what ref names: an index (the entry for WithPlatform is
// taken) or an image manifest, which must be ours.
func Resolve(ctx context.Context, ref string, opts ...Option) (*Resolved, error) {
	o := makeOptions(opts)
	return o.resolve(ctx, ref)
}

func (o *options) resolve(ctx context.Context, ref string) (*Resolved, error) {
	r, err := o.parseRef(ref)
	if err != nil {
		return nil, err
	}
	ropts := o.remoteOptions(ctx)
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	res := &Resolved{Ref: r}
	raw, digest, mt := desc.Manifest, desc.Digest, desc.MediaType
	if len(raw) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: %w: manifest of %d bytes", ref, ErrInvalid, len(raw))
	}
	if mt == types.OCIImageIndex || mt == types.DockerManifestList {
		res.Index, res.IndexDigest = raw, digest
		d, err := PickManifest(raw, o.platform)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		m, err := remote.Get(r.Context().Digest(d.Digest.String()), ropts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %s manifest: %w", ref, o.platform, err)
		}
		raw, digest, mt = m.Manifest, m.Digest, m.MediaType
	}
	if mt == types.DockerManifestSchema2 || (mt == types.OCIManifestSchema1 && isContainerImage(raw)) {
		m, err := ParseImageForm(raw, o.maxFile)
		if err != nil {
			return nil, fmt.Errorf("%s: the image form: %w", ref, err)
		}
		res.ManifestRaw, res.ManifestDigest, res.Manifest, res.ImageForm = raw, digest, m, true
		return res, nil
	}
	if mt != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("%s: %w: media type %q", ref, ErrUnsupported, mt)
	}
	m, files, err := ParseManifest(raw, o.maxFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	res.ManifestRaw, res.ManifestDigest, res.Manifest, res.Files = raw, digest, m, files
	return res, nil
}

// isContainerImage reports whether an OCI manifest is an ordinary
// container image (its config an image config).
func isContainerImage(raw []byte) bool {
	var m struct {
		ArtifactType string        `json:"artifactType"`
		Config       v1.Descriptor `json:"config"`
	}
	return json.Unmarshal(raw, &m) == nil && m.ArtifactType == "" &&
		(m.Config.MediaType == types.OCIConfigJSON || m.Config.MediaType == types.DockerConfigJSON)
}

// Pulled says what Pull wrote.
type Pulled struct {
	Dir      string
	Manifest v1.Hash
	Fetched  int // blobs read from the registry (the others came from the store)
	// Checked are the files whose digests were checked as they were
	// written (all but those of the image form), for layout.WithCheckedFiles.
	Checked map[string]spec.FileRef
}

// Pull writes the artifact ref names to dir as an image layout. Every
// blob's digest and size are checked as it streams into a temporary
// directory beside dir, and the result is verified (layout.Verify) before
// it is renamed to dir, under the same rules as a build's output (dir is
// empty, absent or an earlier layout). A failure leaves dir as it was.
func Pull(ctx context.Context, ref, dir string, opts ...Option) (*Pulled, error) {
	o := makeOptions(opts)
	if err := image.PrepareOutput(dir); err != nil {
		return nil, err
	}
	r, err := o.parseRef(ref)
	if err != nil {
		return nil, err
	}
	// One puller for the manifests and the SBOM lookup, so the registry is
	// pinged (and a token fetched) once; the blob client, which needs only
	// the repository, is made meanwhile.
	if o.puller, err = remote.NewPuller(o.remoteOptions(ctx)...); err != nil {
		return nil, err
	}
	type clientResult struct {
		c   *http.Client
		err error
	}
	clientCh := make(chan clientResult, 1)
	go func() {
		c, err := o.blobClient(ctx, r.Context())
		clientCh <- clientResult{c, err}
	}()
	res, err := o.resolve(ctx, ref)
	cr := <-clientCh
	if err != nil {
		return nil, err
	}
	if cr.err != nil {
		return nil, cr.err
	}
	client := cr.c
	st, err := OpenStore(o.store)
	if err != nil {
		return nil, err
	}
	rep := progress.New(o.log)
	out := &Pulled{Dir: dir, Manifest: res.ManifestDigest}
	err = image.WriteOutput(dir, func(tmp string) error {
		if res.ImageForm {
			if err := pullImageForm(ctx, client, res.Ref.Context(), res.Manifest, tmp, o.maxFile, rep); err != nil {
				return fmt.Errorf("pull %s: %w", ref, err)
			}
			out.Fetched = len(res.Manifest.Layers)
		}
		g, gctx := errgroup.WithContext(ctx)
		// Three blobs at a time, as oras, the largest first, so that the
		// longest download starts at once; the first failure stops the
		// others. The SBOM lookup and the initrd check run beside them.
		slots := make(chan struct{}, 3)
		if rep.Terminal() {
			slots = make(chan struct{}, 1) // one progress bar at a time on a terminal
		}
		acquire := func() bool {
			select {
			case slots <- struct{}{}:
				return true
			case <-gctx.Done():
				return false
			}
		}
		var fetched atomic.Int32
		checked := map[string]spec.FileRef{}
		done := map[string]chan struct{}{}
		for _, b := range res.Files {
			checked[b.Name] = spec.FileRef{Digest: b.Desc.Digest.String(), Size: b.Desc.Size}
			done[b.Name] = make(chan struct{})
		}
		if res.ImageForm {
			checked = nil // its files came out of tar layers: verify them whole
		}
		var early []layout.VerifyOption
		if !res.ImageForm {
			// The initrd is checked against config.json (the strict reading
			// of the whole initrd, to compare the init config in it) as soon
			// as both are here, while rootfs.img still streams; Verify takes
			// the result.
			g.Go(func() error {
				for _, n := range []string{spec.ConfigFile, spec.InitrdFile} {
					select {
					case <-done[n]:
					case <-gctx.Done():
						return nil // the error is another goroutine's
					}
				}
				data, err := os.ReadFile(filepath.Join(tmp, spec.ConfigFile))
				if err != nil {
					return err
				}
				cfg, err := layout.ParseConfig(data)
				if err != nil {
					return fmt.Errorf("pull %s: %s: %w", ref, spec.ConfigFile, err)
				}
				c, err := layout.CheckInitrd(gctx, filepath.Join(tmp, spec.InitrdFile), cfg)
				if err != nil {
					return fmt.Errorf("pull %s: %w", ref, err)
				}
				early = append(early, layout.WithCheckedInitrd(c))
				return nil
			})
			// The SBOM is a referrer of the pushed image; bring it, beside
			// the other blobs, when the registry has one. Verify checks
			// that it describes this image's rootfs.img.
			g.Go(func() error {
				repo, desc, err := findSBOM(gctx, res, o)
				if err != nil {
					if gctx.Err() == nil {
						rep.Printf("no %s: %v", spec.SBOMFile, err)
					}
					return nil
				}
				if !acquire() {
					return gctx.Err()
				}
				defer func() { <-slots }()
				dst := filepath.Join(tmp, spec.SBOMFile)
				ok, err := st.CopyTo(gctx, desc, dst)
				if err == nil && !ok {
					err = fetch(gctx, client, repo, Blob{Name: spec.SBOMFile, Desc: desc}, st, dst, rep)
				}
				if err != nil {
					return fmt.Errorf("pull %s: %s: %w", ref, spec.SBOMFile, err)
				}
				return nil
			})
		}
		// The slots are taken here, in order, so the largest blob starts
		// first.
		bySize := slices.Clone(res.Files)
		slices.SortStableFunc(bySize, func(a, b Blob) int { return cmp.Compare(b.Desc.Size, a.Desc.Size) })
		for _, b := range bySize {
			if !acquire() {
				break // stopped: g.Wait or ctx has the error
			}
			g.Go(func() error {
				defer func() { <-slots }()
				dst := filepath.Join(tmp, b.Name)
				ok, err := st.CopyTo(gctx, b.Desc, dst)
				if err != nil {
					return fmt.Errorf("%s: %w", b.Name, err)
				}
				if ok {
					rep.Printf("%s: from the local store (%s)", b.Name, progress.Bytes(b.Desc.Size))
				} else {
					if err := fetch(gctx, client, res.Ref.Context(), b, st, dst, rep); err != nil {
						return fmt.Errorf("pull %s: %s: %w", ref, b.Name, err)
					}
					fetched.Add(1)
				}
				close(done[b.Name])
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out.Fetched += int(fetched.Load())
		l, err := layout.Open(tmp)
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		// Every blob was checked against its digest as it was written.
		out.Checked = checked
		if err := l.Verify(ctx, append(early, layout.WithCheckedFiles(checked))...); err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := layout.Open(dir); err != nil {
		return nil, err
	}
	rep.Printf("pulled %s@%s to %s", res.Ref.Context(), res.ManifestDigest, dir)
	return out, nil
}

// fetch downloads one blob into the store and dst at once.
func fetch(ctx context.Context, c *http.Client, repo name.Repository, b Blob, st *Store, dst string, rep *progress.Reporter) error {
	rc, err := getBlob(ctx, c, repo, b.Desc.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	task := rep.Start("downloading", "downloaded", b.Name, b.Desc.Size)
	r := &countReader{r: rc, task: task}
	if err := st.Add(ctx, b.Desc, r, dst, "blob "+b.Desc.Digest.String()); err != nil {
		task.Fail()
		return err
	}
	task.Done()
	return nil
}

type countReader struct {
	r    io.Reader
	task *progress.Task
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.task.Add(int64(n))
	return n, err
}

// ReadConfig fetches the config blob of a resolved manifest (config.json,
// at most layout.MaxConfigBytes) and parses it strictly.
func ReadConfig(ctx context.Context, res *Resolved, opts ...Option) ([]byte, error) {
	o := makeOptions(opts)
	d := res.Manifest.Config
	l, err := remote.Layer(res.Ref.Context().Digest(d.Digest.String()), o.remoteOptions(ctx)...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := copyVerified(&buf, rc, d, "config blob"); err != nil {
		return nil, err
	}
	if _, err := layout.ParseConfig(buf.Bytes()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
