// Package engine turns a last stage into an image layout. Its core
// (core.go: Cut, ResolveKernel, CheckMemory, Assemble) is what every front
// door calls once it has the stage's root: the CLI, the BuildKit
// frontend's assembler step and the Packer builder. Build (this file) is
// the embedded engine around that core: it runs a Unifile in-process, with
// no daemon and no root, resolving what the Unifile names (base roots,
// context files) and putting the Unifile's line on every error.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/uniforge/packer-plugin-unikernel/baseimage"
	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// DefaultSourceDateEpoch is the time stamped on every output when
// SOURCE_DATE_EPOCH is not set: a fixed one, so builds are reproducible
// by default.
const DefaultSourceDateEpoch = 0

// Request is one build.
type Request struct {
	ContextDir string            // the build context
	Unifile    string            // path of the Unifile (default ContextDir/Unifile)
	BuildArgs  map[string]string // --build-arg
	OutDir     string            // where the layout goes
	Disk       bool              // also write disk.img
	DataSize   int64             // bytes of a data partition on disk.img
	CacheDir   string            // default cachedir.Dir()
	HostRoot   string            // the root FROM host takes files from (default "/")
	// SourceDateEpoch stamps every output; nil means the SOURCE_DATE_EPOCH
	// variable, else DefaultSourceDateEpoch.
	SourceDateEpoch *int64
	Log             io.Writer // progress and warnings (default: discarded)
	// KernelOptions pass through to kernel.Resolve after the cache
	// directory (a registry fetcher, no distro import, a progress writer).
	KernelOptions []kernel.Option
	// PullOptions pass through to baseimage.Pull after the cache
	// directory (a keychain, a platform, transport options).
	PullOptions []baseimage.Option
}

// Result describes a finished build.
type Result struct {
	Config   *spec.ImageConfig
	Warnings []string
}

type builder struct {
	req      Request
	file     string // the Unifile's name in errors
	cacheDir string
	context  *buildContext
	images   map[string]*baseimage.Image
}

// Prepare fills in req's defaults (the context ".", the Unifile in it, the
// host root "/") and refuses, before any work is done, an output that is
// not ours and a bad SOURCE_DATE_EPOCH. Every door that builds a Unifile
// calls it first (Build does).
func Prepare(req Request) (Request, error) {
	if req.ContextDir == "" {
		req.ContextDir = "."
	}
	if req.Unifile == "" {
		req.Unifile = filepath.Join(req.ContextDir, unifile.DefaultFilename)
	}
	if req.HostRoot == "" {
		req.HostRoot = "/"
	}
	if err := image.PrepareOutput(req.OutDir, req.ContextDir, req.Unifile); err != nil {
		return req, err
	}
	if _, err := SourceDateEpoch(req.SourceDateEpoch); err != nil {
		return req, err
	}
	return req, nil
}

// Build runs req and writes the image layout to req.OutDir.
func Build(ctx context.Context, req Request) (*Result, error) {
	req, err := Prepare(req)
	if err != nil {
		return nil, err
	}
	b, err := newBuilder(req, req.Unifile)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(req.Unifile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no Unifile at %s: name one with -f, or see `uni init` to write one", req.Unifile)
	}
	if err != nil {
		return nil, fmt.Errorf("read the Unifile: %w", err)
	}
	u, err := unifile.Parse(bytes.NewReader(src), unifile.Options{Filename: req.Unifile, BuildArgs: req.BuildArgs,
		// Variables expand against the base image's config, as in BuildKit.
		BaseImage: func(ref, _ string) (*unifile.ImageConfig, error) {
			img, err := b.pull(ctx, ref)
			if err != nil {
				return nil, err
			}
			return unifile.ConfigFromV1(img.Config), nil
		}})
	if err != nil {
		return nil, err
	}
	if err := unifile.CheckEmbedded(u); err != nil {
		return nil, err
	}
	res := &Result{}
	for _, w := range u.Warnings {
		res.Warnings = append(res.Warnings, w.String())
		fmt.Fprintln(b.req.Log, "warning:", w.String())
	}
	if b.context, err = openContext(req.ContextDir, req.Unifile); err != nil {
		return nil, err
	}

	final, err := b.stages(ctx, u)
	if err != nil {
		return nil, err
	}
	return b.finish(ctx, u.Final(), FinalStage{Root: final.view(), Added: final.upper, Settings: u.Final().Settings}, final.lines, res)
}

// newBuilder is a builder of req whose errors name file, with the
// defaults filled in.
func newBuilder(req Request, file string) (*builder, error) {
	if req.Log == nil {
		req.Log = io.Discard
	}
	b := &builder{req: req, file: file, images: map[string]*baseimage.Image{}}
	if b.cacheDir = req.CacheDir; b.cacheDir == "" {
		var err error
		if b.cacheDir, err = cachedir.Dir(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// BuildStage is Build for a stage whose root something else built: `uni
// build --builder` has a BuildKit daemon run the stages, and brings back
// the target stage's root and what it added. st is that stage in u (for
// the lines of errors), fs its roots. What follows is Build's: cut,
// kernel, memory, and the layout written to req.OutDir.
func BuildStage(ctx context.Context, req Request, u *unifile.Unifile, st *unifile.Stage, fs FinalStage) (*Result, error) {
	b, err := newBuilder(req, u.Filename)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	for _, w := range u.Warnings {
		res.Warnings = append(res.Warnings, w.String())
		fmt.Fprintln(b.req.Log, "warning:", w.String())
	}
	fs.Settings = st.Settings
	return b.finish(ctx, st, fs, nil, res)
}

// finish cuts the unikernel out of the last stage st, resolves its
// kernel and writes the layout. lines maps the paths the stage added to
// the instructions that added them, when known.
func (b *builder) finish(ctx context.Context, st *unifile.Stage, fs FinalStage, lines map[string]unifile.Location, res *Result) (*Result, error) {
	req := b.req
	plan, err := Cut(ctx, fs)
	if err != nil {
		return nil, b.stepLineErr(st, err, lines)
	}
	epoch, err := SourceDateEpoch(req.SourceDateEpoch)
	if err != nil {
		return nil, err
	}
	res.Warnings = append(res.Warnings, plan.Warnings...)
	b.progress("kernel %s", plan.Kernel)
	kopts := append([]kernel.Option{kernel.WithCacheDir(filepath.Join(b.cacheDir, cachedir.Kernels)), kernel.WithProgress(b.req.Log)}, req.KernelOptions...)
	bundle, err := ResolveKernel(ctx, plan, kopts...)
	if err != nil {
		return nil, b.kernelErr(st, err)
	}
	if err := CheckMemory(bundle, plan); err != nil {
		return nil, b.stepLineErr(st, err, nil)
	}
	b.progress("writing %s", req.OutDir)
	cfg, err := Assemble(ctx, plan, bundle, Output{Dir: req.OutDir, Disk: req.Disk, DataSize: req.DataSize, SourceDateEpoch: epoch,
		Name: filepath.Base(absOr(req.ContextDir))})
	if err != nil {
		return nil, err
	}
	res.Config = cfg
	return res, nil
}

// absOr is p made absolute, or p when that fails.
func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// kernelErr puts the KERNEL line on a kernel error, unless the build was
// stopped or the download failed: neither is the Unifile's fault.
func (b *builder) kernelErr(st *unifile.Stage, err error) error {
	var dl *kernel.DownloadError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &dl) {
		return err
	}
	return b.stepLineErr(st, err, nil)
}

// stages builds every stage's root in order and returns the last one's.
func (b *builder) stages(ctx context.Context, u *unifile.Unifile) (*stageRoot, error) {
	done := make([]*stageRoot, 0, len(u.Stages))
	for _, st := range u.Stages {
		lower, img, err := b.baseRoot(ctx, st, done)
		if err != nil {
			return nil, err
		}
		root := &stageRoot{upper: rootfs.NewTree(), image: img, lines: map[string]unifile.Location{}}
		root.fs = rootfs.Overlay{Upper: root.upper, Lower: lower}
		for _, ins := range st.Instructions {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if c, ok := ins.(*unifile.Copy); ok {
				if err := b.copyInto(ctx, root, c, done); err != nil {
					return nil, err
				}
			}
		}
		done = append(done, root)
	}
	return done[len(done)-1], nil
}

// view is the stage's root as a whole: what COPY wrote over its base, or
// only what COPY wrote when the stage is FROM scratch.
func (r *stageRoot) view() rootfs.FS {
	if r.fs.Lower == nil {
		return r.upper
	}
	return r.fs
}

func (b *builder) progress(format string, args ...any) {
	fmt.Fprintf(b.req.Log, "==> "+format+"\n", args...)
}

// lineErr locates err at a line of the Unifile, keeping it as the cause.
func (b *builder) lineErr(loc unifile.Location, err error) error {
	var ue *unifile.Error
	if errors.As(err, &ue) {
		return err // located already
	}
	return &unifile.Error{File: b.file, Line: loc.Line, Msg: err.Error(), Err: err}
}

// lineErrf is lineErr of a formatted error (wrap the cause with %w).
func (b *builder) lineErrf(loc unifile.Location, format string, args ...any) error {
	return b.lineErr(loc, fmt.Errorf(format, args...))
}

// SourceDateEpoch is given when it is not nil, else the SOURCE_DATE_EPOCH
// variable, else DefaultSourceDateEpoch: the time every output is stamped
// with (the CLI's kernel push uses it too).
func SourceDateEpoch(given *int64) (int64, error) {
	if given != nil {
		return *given, nil
	}
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return DefaultSourceDateEpoch, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, errors.New("SOURCE_DATE_EPOCH: want a non-negative number of seconds")
	}
	return v, nil
}
