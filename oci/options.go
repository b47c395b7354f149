package oci

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Option configures Push, Pull and Inspect.
type Option func(*options)

type options struct {
	insecure  bool
	disk      bool
	mountFrom []string
	log       io.Writer
	keychain  authn.Keychain
	transport http.RoundTripper
	platform  string
	maxFile   int64
	store     string         // the content store's directory; "" = in the cache
	epoch     int64          // the time stamped on the images uni writes (SOURCE_DATE_EPOCH)
	puller    *remote.Puller // shared by one operation's reads, so the registry is pinged once
}

// WithInsecure allows plain HTTP to any registry (loopback registries get
// it without this option).
func WithInsecure(yes bool) Option { return func(o *options) { o.insecure = yes } }

// WithDisk makes Push include disk.img.
func WithDisk(yes bool) Option { return func(o *options) { o.disk = yes } }

// WithMountFrom names repositories of the same registry (e.g.
// "reg.example/kernels") whose blobs Push mounts instead of uploading. The
// pushed ref's own repository is always looked at.
func WithMountFrom(repos ...string) Option {
	return func(o *options) { o.mountFrom = append(o.mountFrom, repos...) }
}

// WithProgress reports each blob to w: a bar on a terminal, plain lines
// otherwise.
func WithProgress(w io.Writer) Option { return func(o *options) { o.log = w } }

// WithKeychain replaces authn.DefaultKeychain (the docker config and its
// credential helpers, as FROM uses).
func WithKeychain(kc authn.Keychain) Option { return func(o *options) { o.keychain = kc } }

// WithTransport replaces the HTTP transport (tests count requests with it).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithPlatform picks the index entry Pull takes ("linux/amd64" by default).
func WithPlatform(p string) Option { return func(o *options) { o.platform = p } }

// WithMaxFileSize bounds every file a pull accepts but config.json.
func WithMaxFileSize(n int64) Option { return func(o *options) { o.maxFile = n } }

// WithStore puts the local content store in dir instead of the cache.
func WithStore(dir string) Option { return func(o *options) { o.store = dir } }

// WithSourceDateEpoch stamps the images PushKernelBundle writes (file
// times, the config's created) with sec, seconds since 1970 (default 0).
func WithSourceDateEpoch(sec int64) Option { return func(o *options) { o.epoch = sec } }

func makeOptions(opts []Option) options {
	o := options{
		keychain:  authn.DefaultKeychain,
		transport: remote.DefaultTransport,
		platform:  PlatformOS + "/" + PlatformArch,
		maxFile:   DefaultMaxFileBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// parseRef parses a reference; plain HTTP is for loopback hosts or with
// WithInsecure.
func (o *options) parseRef(ref string) (name.Reference, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", ref, err)
	}
	return r, nil
}

// Backoff of the retries on transient errors: 1s, 2s, 4s, 8s, with jitter.
var retryBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}

// remoteOptions are ggcr's options for one operation.
func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(&httpGuard{next: o.transport, insecure: o.insecure}),
		remote.WithRetryBackoff(retryBackoff),
		remote.WithRetryStatusCodes(retryStatusCodes...),
		remote.WithUserAgent("uni"),
	}
	if o.puller != nil {
		ropts = append(ropts, remote.Reuse(o.puller))
	}
	return ropts
}

// httpGuard keeps plain HTTP to loopback hosts, unless the user said
// --insecure: ggcr speaks HTTP to private (RFC 1918) addresses too, where a
// network attacker can answer, so such a request goes out over TLS instead.
type httpGuard struct {
	next     http.RoundTripper
	insecure bool
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure && !IsLoopback(req.URL.Hostname()) {
		req = req.Clone(req.Context())
		req.URL.Scheme = "https"
	}
	return g.next.RoundTrip(req)
}

// IsLoopback reports whether host (no port) is localhost or a loopback
// address (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsRemoteRef reports whether s reads as a reference with an explicit
// registry ("reg.example/app:1", "127.0.0.1:5000/app"), which `uni run`
// pulls when no file of that name exists. A bare "app:1" is not one: it
// would otherwise send a typo'd file name to Docker Hub.
func IsRemoteRef(s string) bool {
	host, _, ok := strings.Cut(s, "/")
	if !ok || strings.HasPrefix(host, ".") || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return false
	}
	_, err := name.ParseReference(s)
	return err == nil
}

// DefaultDir is the directory `uni pull` writes when given none: the last
// part of the repository's name ("hello" for reg.example/apps/hello:1).
func DefaultDir(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("reference %q: %w", ref, err)
	}
	return path.Base(r.Context().RepositoryStr()), nil
}

// retryStatusCodes are the transient answers retried with retryBackoff.
var retryStatusCodes = []int{http.StatusRequestTimeout, http.StatusTooManyRequests,
	http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// blobClient is an authenticated, retrying HTTP client for reading blobs
// of repo. Pull reads blobs with it rather than with ggcr's layer reader,
// which hashes every blob a second time.
func (o *options) blobClient(ctx context.Context, repo name.Repository) (*http.Client, error) {
	auth, err := authn.Resolve(ctx, o.keychain, repo)
	if err != nil {
		return nil, err
	}
	rt := transport.NewRetry(&httpGuard{next: o.transport, insecure: o.insecure},
		transport.WithRetryBackoff(retryBackoff), transport.WithRetryStatusCodes(retryStatusCodes...))
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr}, nil
}

// getBlob opens the blob d of repo.
func getBlob(ctx context.Context, c *http.Client, repo name.Repository, d v1.Hash) (io.ReadCloser, error) {
	u := url.URL{Scheme: repo.Registry.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/%s", repo.RepositoryStr(), d)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
}
