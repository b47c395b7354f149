package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	bkclient "github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer" // docker-container://NAME
	_ "github.com/moby/buildkit/client/connhelper/kubepod"         // kube-pod://POD
	_ "github.com/moby/buildkit/client/connhelper/ssh"             // ssh://HOST
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// `uni build --builder ADDR` sends a Unifile to a BuildKit daemon: the
// daemon runs every stage (RUN included) exactly as under buildx, through
// Convert, and sends back the target stage's root and what that stage
// added as tar streams; the engine core then cuts and assembles them here,
// on the kernel bundles of this machine's cache. No frontend image is
// needed, and the bytes are those of `uni build` and of buildx.

// Daemon says which BuildKit daemon builds, and how its progress shows.
type Daemon struct {
	// Addr is buildctl's --addr: tcp://HOST:PORT, unix:///PATH,
	// docker-container://NAME, kube-pod://POD, ssh://HOST.
	Addr string
	// Target is --target: the stage that becomes the unikernel.
	Target string
	// Progress receives BuildKit's progress display; nil shows none.
	Progress io.Writer
	// ProgressMode is "auto" (a terminal display on a terminal), "plain",
	// "tty" or "quiet".
	ProgressMode string
}

// BuildOnDaemon builds req's Unifile on the daemon d and writes the image
// layout to req.OutDir, as engine.Build would have without RUN.
func BuildOnDaemon(ctx context.Context, d Daemon, req engine.Request) (*engine.Result, error) {
	req, err := engine.Prepare(req)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(req.Unifile); err != nil {
		return nil, fmt.Errorf("no Unifile at %s: %w", req.Unifile, err)
	}
	c, err := bkclient.New(ctx, d.Addr)
	if err != nil {
		return nil, fmt.Errorf("BuildKit daemon %s: %w", d.Addr, err)
	}
	defer c.Close()
	ctxFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", req.ContextDir, err)
	}
	fileFS, err := fsutil.NewFS(filepath.Dir(req.Unifile))
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{"filename": filepath.Base(req.Unifile)}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	if d.Target != "" {
		attrs["target"] = d.Target
	}
	cacheDir := req.CacheDir
	if cacheDir == "" {
		if cacheDir, err = cachedir.Dir(); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp(cacheDir, ".daemon-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	store := &rootfs.BlobStore{Dir: work}

	b := &daemonBuild{client: c, d: d, filename: req.Unifile, opt: bkclient.SolveOpt{
		LocalMounts:   map[string]fsutil.FS{dockerui.DefaultLocalNameContext: ctxFS, dockerui.DefaultLocalNameDockerfile: fileFS},
		FrontendAttrs: attrs,
	}}
	// The stage's root first; what it added is then all cached but the
	// export. Each comes back as one tar stream.
	root, err := b.export(ctx, "root", store, func(c *Conversion) (llb.State, rootfs.Origin) { return c.Root, c.Request.stageOrigin() })
	if err != nil {
		return nil, err
	}
	added, err := b.export(ctx, "added", store, func(c *Conversion) (llb.State, rootfs.Origin) {
		return c.Added, rootfs.Origin{Kind: rootfs.OriginStageAdded}
	})
	if err != nil {
		return nil, err
	}
	return engine.BuildStage(ctx, req, b.conv.Unifile, b.conv.Stage, engine.FinalStage{Root: root, Added: added})
}

type daemonBuild struct {
	client   *bkclient.Client
	d        Daemon
	filename string
	opt      bkclient.SolveOpt
	conv     *Conversion // of the last export
}

// export has the daemon build the state pick chooses and stream it back
// as a tar, read into a tree whose file contents go to store.
func (b *daemonBuild) export(ctx context.Context, what string, store *rootfs.BlobStore, pick func(*Conversion) (llb.State, rootfs.Origin)) (*rootfs.Tree, error) {
	pr, pw := io.Pipe()
	opt := b.opt
	opt.Exports = []bkclient.ExportEntry{{Type: bkclient.ExporterTar, Output: func(map[string]string) (io.WriteCloser, error) { return pw, nil }}}
	var convErr error
	origins := make(chan rootfs.Origin, 1) // the exported state's, once solved
	build := func(ctx context.Context, c client.Client) (*client.Result, error) {
		bc, err := dockerui.NewClient(c)
		if err != nil {
			return nil, err
		}
		src, err := bc.ReadEntrypoint(ctx, "Dockerfile")
		if err != nil {
			return nil, err
		}
		conv, err := Convert(ctx, src.Data, ConvertOpt{
			Config: bc.Config, Client: bc, SourceMap: src.SourceMap, MetaResolver: c, Filename: b.filename,
		})
		if err != nil {
			convErr = err
			return nil, located(err, src.SourceMap)
		}
		b.conv = conv
		st, origin := pick(conv)
		ref, err := solve(ctx, c, st)
		if err != nil {
			return nil, err
		}
		origins <- origin
		res := client.NewResult()
		res.SetRef(ref)
		return res, nil
	}

	var tree *rootfs.Tree
	g, gctx := errgroup.WithContext(ctx)
	status := make(chan *bkclient.SolveStatus)
	g.Go(func() error { return b.display(gctx, status) })
	g.Go(func() error {
		entries, err := rootfs.ReadLayer(gctx, pr, "the "+what+" of the stage", store)
		if err == nil {
			_, err = io.Copy(io.Discard, pr) // what follows the tar's end
		}
		pr.CloseWithError(err) // unblock the exporter if the read stopped early
		if err != nil {
			return err
		}
		// The build solved the state before its exporter streamed it.
		var origin rootfs.Origin
		select {
		case origin = <-origins:
		case <-gctx.Done():
			return gctx.Err()
		}
		tree = rootfs.NewTree()
		return rootfs.ApplyLayerFrom(tree, origin, entries, store)
	})
	g.Go(func() error {
		_, err := b.client.Build(gctx, opt, "uni", build, status)
		// The exporter closes pw when it has written all; a failed build
		// never opened it.
		pw.CloseWithError(errors.Join(err, io.ErrUnexpectedEOF))
		if convErr != nil {
			return convErr // the Unifile's own error, with its line
		}
		if err != nil {
			return fmt.Errorf("BuildKit daemon %s: %w", b.d.Addr, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return tree, nil
}

// display shows BuildKit's progress, or drains it.
func (b *daemonBuild) display(ctx context.Context, ch chan *bkclient.SolveStatus) error {
	if b.d.Progress == nil || b.d.ProgressMode == string(progressui.QuietMode) {
		for range ch {
		}
		return nil
	}
	mode := progressui.DisplayMode(strings.ToLower(b.d.ProgressMode))
	disp, err := progressui.NewDisplay(b.d.Progress, mode)
	if err != nil {
		for range ch {
		}
		return err
	}
	_, err = disp.UpdateFrom(ctx, ch)
	return err
}
