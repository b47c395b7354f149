package frontend

import (
	"context"
	"sync"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	digest "github.com/opencontainers/go-digest"
)

// resolveCache answers each base image's config once per conversion: uni's
// parser and both dockerfile2llb conversions ask for it, and each question
// is a round trip to the daemon. (BuildKit's Dockerfile frontend caches
// the same way.) Questions other than a plain image config pass through.
type resolveCache struct {
	llb.ImageMetaResolver
	mu sync.Mutex
	m  map[string]*resolved
}

type resolved struct {
	once sync.Once
	ref  string
	dgst digest.Digest
	cfg  []byte
	err  error
}

func newResolveCache(r llb.ImageMetaResolver) *resolveCache {
	return &resolveCache{ImageMetaResolver: r, m: map[string]*resolved{}}
}

func (r *resolveCache) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	key, ok := resolveKey(ref, opt)
	if !ok {
		return r.ImageMetaResolver.ResolveImageConfig(ctx, ref, opt)
	}
	r.mu.Lock()
	e := r.m[key]
	if e == nil {
		e = &resolved{}
		r.m[key] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.ref, e.dgst, e.cfg, e.err = r.ImageMetaResolver.ResolveImageConfig(ctx, ref, opt) })
	return e.ref, e.dgst, e.cfg, e.err
}

// resolveKey is what decides the answer to a plain image config question:
// the reference, the platform and the resolve mode (the progress name
// does not). ok is false for any other question.
func resolveKey(ref string, opt sourceresolver.Opt) (key string, ok bool) {
	io := opt.ImageOpt
	if io == nil || len(opt.SourcePolicies) > 0 || opt.OCILayoutOpt != nil || opt.GitOpt != nil || opt.HTTPOpt != nil ||
		io.NoConfig || io.AttestationChain || len(io.ResolveAttestations) > 0 {
		return "", false
	}
	p := ""
	if io.Platform != nil {
		p = platforms.FormatAll(platforms.Normalize(*io.Platform))
	}
	mode := io.ResolveMode
	if mode == "" {
		mode = llb.ResolveModeDefault.String()
	}
	return ref + "\x00" + p + "\x00" + mode, true
}
