package frontend

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/frontendimage"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// DefaultFilename is the file the frontend reads when the build names none
// (-f): a Unifile, not a Dockerfile.
const DefaultFilename = unifile.DefaultFilename

// Build is the frontend: BuildKit's gateway runs it inside the frontend
// image (`# syntax=` or BUILDKIT_SYNTAX). It reads the Unifile, converts
// it (Convert), runs the assembly step, and returns the image layout as
// the build's result: `-o type=local` writes its files, `--push` and
// `-o type=image|oci|tar` carry them as one layer of an image (the image
// form that `uni pull` reads).
func Build(ctx context.Context, c client.Client) (*client.Result, error) {
	self, err := currentFrontend(c)
	if err != nil {
		return nil, err
	}
	info, err := frontendimage.ReadInfo(frontendimage.InfoPath)
	if err != nil {
		return nil, fmt.Errorf("the frontend image's own settings: %w", err)
	}
	return BuildWith(ctx, c, BuildOpt{Assembler: self, DefaultKernel: info.DefaultKernel})
}

// BuildOpt is what BuildWith needs beyond the gateway client.
type BuildOpt struct {
	// Assembler is the image that runs the assembly step.
	Assembler llb.State
	// DefaultKernel is the bundle image `KERNEL linux` means.
	DefaultKernel string
}

// BuildWith is Build with its image and default kernel given.
func BuildWith(ctx context.Context, c client.Client, bo BuildOpt) (*client.Result, error) {
	bc, err := dockerui.NewClient(withDefaultFilename{c})
	if err != nil {
		return nil, err
	}
	src, err := bc.ReadEntrypoint(ctx, "Dockerfile")
	if err != nil {
		return nil, err
	}
	opt := ConvertOpt{
		Config:        bc.Config,
		Client:        bc,
		SourceMap:     src.SourceMap,
		MetaResolver:  c,
		Filename:      src.SourceMap.Filename,
		DefaultKernel: bo.DefaultKernel,
		Assembler:     bo.Assembler,
		Warn: func(rule, description, url, msg string, location []parser.Range) {
			line := 0
			if len(location) > 0 {
				line = location[0].Start.Line
			}
			src.Warn(ctx, linter.LintFormatShort(rule, msg, line), client.WarnOpts{Range: toPB(location), URL: url})
		},
	}
	sub, err := Subrequests(src.Data, opt)
	if err != nil {
		return nil, located(err, src.SourceMap)
	}
	if res, ok, err := bc.HandleSubrequest(ctx, sub); err != nil {
		return nil, located(err, src.SourceMap)
	} else if ok {
		return res, nil
	}
	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, _ int) (*dockerui.BuildResult, error) {
		if platform != nil {
			opt.TargetPlatforms = []ocispecs.Platform{*platform}
		}
		return build(ctx, c, src, opt)
	})
	if err != nil {
		return nil, located(err, src.SourceMap)
	}
	return rb.Finalize()
}

// build converts, runs the assembly step, and turns its report into an
// error at the right line or warnings.
func build(ctx context.Context, c client.Client, src *dockerui.Source, opt ConvertOpt) (*dockerui.BuildResult, error) {
	conv, err := Convert(ctx, src.Data, opt)
	if err != nil {
		return nil, err
	}
	for _, w := range conv.Warnings {
		src.Warn(ctx, w.Msg, client.WarnOpts{Range: lineRanges(w.Line, w.Line)})
	}
	status, err := solve(ctx, c, conv.Status)
	if err != nil {
		return nil, err
	}
	data, err := status.ReadFile(ctx, client.ReadRequest{Filename: StatusFile})
	if err != nil {
		return nil, fmt.Errorf("the assembly step wrote no report: %w", err)
	}
	st, err := ReadStatus(data)
	if err != nil {
		return nil, err
	}
	if st.Error != nil {
		return nil, atStep(conv.Unifile, conv.Stage, &engine.StepError{Step: st.Error.Step, Path: st.Error.Path, Err: st.Error})
	}
	for _, w := range st.Warnings {
		src.Warn(ctx, w, client.WarnOpts{})
	}
	layout, err := solve(ctx, c, conv.Layout)
	if err != nil {
		return nil, err
	}
	return &dockerui.BuildResult{Reference: layout, Image: imageConfig(conv)}, nil
}

func solve(ctx context.Context, c client.Client, st llb.State) (client.Reference, error) {
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	return res.SingleRef()
}

// imageConfig is the config of the image form: a container image whose
// one layer holds the layout's files. Nothing runs it as a container, so
// it carries only the platform, the creation time and the labels.
func imageConfig(c *Conversion) *dockerspec.DockerOCIImage {
	img := &dockerspec.DockerOCIImage{}
	img.OS, img.Architecture = "linux", "amd64"
	img.RootFS.Type = "layers"
	img.Config.Labels = c.Request.Settings.Labels
	return img
}

// located attaches the Unifile's lines to an error that names one, so
// that BuildKit (buildx, buildctl) shows them under the message.
func located(err error, sm *llb.SourceMap) error {
	if len(errdefs.Sources(err)) > 0 {
		return err
	}
	var ue *unifile.Error
	if errors.As(err, &ue) && ue.Line > 0 {
		// BuildKit prints the file and line above the message already.
		return withSource(atLine{ue}, sm, lineRanges(ue.Line, ue.Line))
	}
	var le *parser.LocationError
	if errors.As(err, &le) {
		for _, l := range le.Locations {
			err = withSource(err, sm, toPB(l))
		}
	}
	return err
}

// atLine is a Unifile error whose text leaves out the file and line,
// which BuildKit's source display shows.
type atLine struct{ err *unifile.Error }

func (e atLine) Error() string { return e.err.Msg }
func (e atLine) Unwrap() error { return e.err }

func withSource(err error, sm *llb.SourceMap, ranges []*pb.Range) error {
	if sm == nil {
		return err
	}
	return errdefs.WithSource(err, &errdefs.Source{
		Info: &pb.SourceInfo{
			Data:       sm.Data,
			Filename:   sm.Filename,
			Language:   sm.Language,
			Definition: sm.Definition.ToPB(),
		},
		Ranges: ranges,
	})
}

func toPB(rs []parser.Range) []*pb.Range {
	out := make([]*pb.Range, 0, len(rs))
	for _, r := range rs {
		out = append(out, &pb.Range{
			Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Character)},
			End:   &pb.Position{Line: int32(r.End.Line), Character: int32(r.End.Character)},
		})
	}
	return out
}

// currentFrontend is the frontend's own image, digest-pinned, which holds
// the assembler. BuildKit's gateway client offers it through a method its
// interface does not name.
func currentFrontend(c client.Client) (llb.State, error) {
	cf, ok := c.(interface{ CurrentFrontend() (*llb.State, error) })
	if !ok {
		return llb.State{}, errors.New("this BuildKit gateway cannot name the frontend's own image, which runs the assembly step")
	}
	st, err := cf.CurrentFrontend()
	if err != nil {
		return llb.State{}, fmt.Errorf("the frontend's own image: %w", err)
	}
	if st == nil {
		return llb.State{}, errors.New("the frontend's own image is unknown: run it as an image (`# syntax=REF` or BUILDKIT_SYNTAX=REF), not in-process")
	}
	return *st, nil
}

// withDefaultFilename makes the frontend read "Unifile" when the build
// names no file.
type withDefaultFilename struct{ client.Client }

func (w withDefaultFilename) BuildOpts() client.BuildOpts {
	bo := w.Client.BuildOpts()
	if _, ok := bo.Opts["filename"]; !ok {
		opts := make(map[string]string, len(bo.Opts)+1)
		for k, v := range bo.Opts {
			opts[k] = v
		}
		opts["filename"] = DefaultFilename
		bo.Opts = opts
	}
	return bo
}
