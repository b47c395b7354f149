package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/frontend/subrequests/targets"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// ConvertOpt is what Convert needs besides the Unifile's text.
type ConvertOpt struct {
	// Config carries the build's options: build args, --target, platforms.
	dockerui.Config
	// Client gives dockerfile2llb the build context, named contexts and
	// .dockerignore; nil in tests, as in dockerfile2llb's own.
	Client *dockerui.Client
	// MainContext is the build context when Client is nil (tests).
	MainContext *llb.State
	// SourceMap ties LLB vertices to Unifile lines for BuildKit's error
	// display; nil in tests.
	SourceMap *llb.SourceMap
	// MetaResolver resolves base image configs; nil means none.
	MetaResolver llb.ImageMetaResolver
	// Filename names the Unifile in errors (DefaultFilename if empty).
	Filename string
	// DefaultKernel is the kernel bundle image `KERNEL linux` means (and no
	// KERNEL at all): the reference baked into the frontend image.
	DefaultKernel string
	// Assembler is the image that runs the assembly step: the frontend's
	// own. Without one, Convert gives the stage's roots and no assembly
	// step, kernel or request.
	Assembler llb.State
	// Warn receives dockerfile2llb's lint warnings; nil drops them.
	Warn linter.LintWarnFunc
}

// Conversion is a Unifile as LLB: the target stage's root, what that
// stage added over its base, the kernel bundle, and the assembly step that
// turns them into an image layout.
type Conversion struct {
	Unifile *unifile.Unifile
	// Stage is the stage that becomes the unikernel (the last, or --target).
	Stage *unifile.Stage
	// Root is the stage's whole root, Base the root it started from, and
	// Added what the stage wrote over Base (llb.Diff), as BuildKit built them.
	Root, Base, Added llb.State
	// Image is the stage's image config as dockerfile2llb computed it.
	Image *dockerspec.DockerOCIImage
	// Kernel is the kernel bundle's image, KernelRef its reference.
	Kernel    llb.State
	KernelRef string
	// Request is what the assembly step is asked to do.
	Request Request
	// Layout is the assembly step's output (the image layout's files at
	// its root) and Status its report (StatusFile).
	Layout, Status llb.State
	// Warnings are differences between uni's reading of the Unifile and
	// BuildKit's, which would make `uni build` give other bytes.
	Warnings []Warning
}

// Warning is something a user should hear about, at a Unifile line (0: the
// whole file).
type Warning struct {
	Line int
	Msg  string
}

// Mount points of the assembly step.
const (
	mountRequest  = "/uni"
	mountRoot     = "/stage"
	mountAdded    = "/added"
	mountKernel   = "/kernel"
	mountVerified = "/verified"
	mountOut      = "/out"
	mountStatus   = "/status"
	requestFile   = "request.json"
	// StatusFile is the assembly step's report, at the root of its status output.
	StatusFile = "status.json"
	// AssemblerPath is the frontend binary inside its image; its
	// "assemble" subcommand is the assembly step.
	AssemblerPath = "/bin/uni-frontend"
)

// Convert turns a Unifile into LLB, a pure function of its inputs: every
// stage through BuildKit's own dockerfile2llb (RUN, mounts, secrets, build
// args, --target, named contexts), with the unikernel keywords taken out
// first and carried in the assembly request. Errors are *unifile.Error
// (our reading of the file) or dockerfile2llb's (parser.LocationError),
// both located at a line.
func Convert(ctx context.Context, src []byte, opt ConvertOpt) (*Conversion, error) {
	if opt.Filename == "" {
		opt.Filename = DefaultFilename
	}
	platform, err := targetPlatform(opt.TargetPlatforms)
	if err != nil {
		return nil, err
	}
	if opt.MetaResolver != nil {
		opt.MetaResolver = newResolveCache(opt.MetaResolver)
	}
	digests := map[string]string{} // base image digests, for the SBOM
	u, err := unifile.Parse(bytes.NewReader(src), unifile.Options{
		Filename:       opt.Filename,
		BuildArgs:      opt.BuildArgs,
		TargetPlatform: platform,
		BaseImage:      baseConfigFunc(ctx, opt.MetaResolver, opt.ImageResolveMode, digests),
	})
	if err != nil {
		return nil, err
	}
	for _, st := range u.Stages {
		if st.Base.Kind == unifile.BaseHost {
			return nil, &unifile.Error{File: u.Filename, Line: st.Line,
				Msg: "FROM host takes files from the machine uni runs on, which a BuildKit builder is not: name a base image instead (FROM debian:12-slim, say), or build this Unifile with `uni build`"}
		}
	}
	stage, err := targetStage(u, opt.Target)
	if err != nil {
		return nil, err
	}
	dockerfile, err := unifile.StripUnikernelKeywords(src)
	if err != nil {
		return nil, err
	}
	d2l := opt.dockerfile2llb()
	// Every stage is dispatched, so that both conversions below ask for
	// the same context paths and share every vertex up to the base.
	d2l.AllStages = true
	full, err := dockerfile2llb.Dockerfile2LLB(ctx, dockerfile, d2l)
	if err != nil {
		return nil, err
	}
	// The stage's base is what a stage with the same FROM and nothing
	// else becomes: dockerfile2llb builds it as it built the full stage's
	// start, so the two share its vertices.
	withBase, baseName, err := appendBaseStage(dockerfile, stage)
	if err != nil {
		return nil, err
	}
	d2l.Target, d2l.Warn = baseName, nil
	base, err := dockerfile2llb.Dockerfile2LLB(ctx, withBase, d2l)
	if err != nil {
		return nil, err
	}
	c := &Conversion{
		Unifile: u,
		Stage:   stage,
		Root:    full.State,
		Base:    base.State,
		Image:   full.Image,
	}
	c.Added = llb.Diff(c.Base, c.Root, llb.WithCustomName("what the last stage adds over its base"))

	settings := stage.Settings
	c.Warnings = compareConfig(stage, full.Image)
	c.Request = Request{
		Settings:        settings,
		KernelName:      settings.Kernel,
		SourceDateEpoch: epochOf(full),
		Name:            appName(stage),
	}
	if stage.Base.Kind == unifile.BaseImage {
		c.Request.BaseImage, c.Request.BaseImageDigest = stage.Base.Ref, digests[stage.Base.Ref]
	}
	if opt.Assembler.Output() == nil {
		return c, nil // the stage's roots alone (uni build --builder assembles them itself)
	}
	if c.KernelRef, err = kernelImageRef(settings.Kernel, opt.DefaultKernel); err != nil {
		return nil, atStep(u, stage, &engine.StepError{Step: engine.StepKernel, Err: err})
	}
	c.Kernel = llb.Image(c.KernelRef, llb.Platform(ocispecs.Platform{OS: "linux", Architecture: "amd64"}),
		llb.WithCustomName("kernel bundle "+c.KernelRef))

	reqJSON, err := json.Marshal(c.Request)
	if err != nil {
		return nil, err
	}
	req := llb.Scratch().File(llb.Mkfile("/"+requestFile, 0o444, reqJSON), llb.WithCustomName("unikernel settings"))
	verified := opt.Assembler.Run(
		llb.Args([]string{AssemblerPath, "verify-kernel", mountKernel, mountVerified}),
		llb.Network(llb.NetModeNone),
		llb.ReadonlyRootFS(),
		llb.WithCustomName("verify kernel bundle "+c.KernelRef),
		llb.AddMount(mountKernel, c.Kernel, llb.Readonly),
	).AddMount(mountVerified, llb.Scratch())
	runOpts := []llb.RunOption{
		llb.Args([]string{AssemblerPath, "assemble", path.Join(mountRequest, requestFile)}),
		llb.Network(llb.NetModeNone),
		llb.ReadonlyRootFS(),
		llb.WithCustomName(stepName(settings)),
		llb.AddMount(mountRequest, req, llb.Readonly),
		llb.AddMount(mountRoot, c.Root, llb.Readonly),
		llb.AddMount(mountAdded, c.Added, llb.Readonly),
		llb.AddMount(mountKernel, c.Kernel, llb.Readonly),
		llb.AddMount(mountVerified, verified, llb.Readonly),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
	}
	if opt.SourceMap != nil {
		// BuildKit shows the stage's lines if the step itself fails.
		runOpts = append(runOpts, opt.SourceMap.Location(stageRanges(stage)))
	}
	run := opt.Assembler.Run(runOpts...)
	c.Layout = run.AddMount(mountOut, llb.Scratch())
	c.Status = run.AddMount(mountStatus, llb.Scratch())
	return c, nil
}

// dockerfile2llb is opt as dockerfile2llb takes it.
func (opt ConvertOpt) dockerfile2llb() dockerfile2llb.ConvertOpt {
	return dockerfile2llb.ConvertOpt{
		Config:       opt.Config,
		Client:       opt.Client,
		MainContext:  opt.MainContext,
		SourceMap:    opt.SourceMap,
		MetaResolver: opt.MetaResolver,
		Warn:         opt.Warn,
	}
}

// Subrequests answers BuildKit's questions about a Unifile that build
// nothing (buildx's --print=outline, --print=targets, --check) with
// dockerfile2llb's answers for the Unifile without its unikernel keywords.
func Subrequests(src []byte, opt ConvertOpt) (dockerui.RequestHandler, error) {
	dockerfile, err := unifile.StripUnikernelKeywords(src)
	if err != nil {
		return dockerui.RequestHandler{}, err
	}
	d2l := opt.dockerfile2llb()
	return dockerui.RequestHandler{
		Outline: func(ctx context.Context) (*outline.Outline, error) {
			return dockerfile2llb.Dockerfile2Outline(ctx, dockerfile, d2l)
		},
		ListTargets: func(ctx context.Context) (*targets.List, error) {
			return dockerfile2llb.ListTargets(ctx, dockerfile)
		},
		Lint: func(ctx context.Context) (*lint.LintResults, error) {
			return dockerfile2llb.DockerfileLint(ctx, dockerfile, d2l)
		},
	}, nil
}

// targetPlatform is the one platform a unikernel is built for. The kernel
// bundles are amd64 today, so that is all a build may ask for.
func targetPlatform(ps []ocispecs.Platform) (string, error) {
	if len(ps) > 1 {
		return "", fmt.Errorf("a unikernel is built for one platform; %d were asked for", len(ps))
	}
	if len(ps) == 1 && (ps[0].OS != "linux" || ps[0].Architecture != "amd64") {
		return "", fmt.Errorf("platform %s/%s: unikernels are built for linux/amd64 only", ps[0].OS, ps[0].Architecture)
	}
	return "linux/amd64", nil
}

// baseConfigFunc gives the parser base image configs through BuildKit's
// resolver, so that variables in the unikernel keywords expand as in
// dockerfile2llb. A config that cannot be had is left to dockerfile2llb,
// which reports it in its own words.
func baseConfigFunc(ctx context.Context, r llb.ImageMetaResolver, mode llb.ResolveMode, digests map[string]string) func(ref, platform string) (*unifile.ImageConfig, error) {
	if r == nil {
		return nil
	}
	return func(ref, platform string) (*unifile.ImageConfig, error) {
		p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
		if platform != "" {
			os, arch, _ := strings.Cut(platform, "/")
			p = ocispecs.Platform{OS: os, Architecture: arch}
		}
		_, dgst, dt, err := r.ResolveImageConfig(ctx, ref, sourceresolver.Opt{ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &p, ResolveMode: mode.String()}})
		if err != nil {
			return nil, nil
		}
		digests[ref] = dgst.String()
		var img ocispecs.Image
		if err := json.Unmarshal(dt, &img); err != nil {
			return nil, nil
		}
		return &unifile.ImageConfig{
			Env: img.Config.Env, WorkingDir: img.Config.WorkingDir, User: img.Config.User,
			Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd,
			ExposedPorts: img.Config.ExposedPorts, Labels: img.Config.Labels,
		}, nil
	}
}

// targetStage is the stage --target names, else the last.
func targetStage(u *unifile.Unifile, target string) (*unifile.Stage, error) {
	if target == "" {
		return u.Final(), nil
	}
	for _, st := range u.Stages {
		if st.Name != "" && st.Name == strings.ToLower(target) {
			return st, nil
		}
	}
	return nil, fmt.Errorf("target stage %q could not be found", target)
}

// appendBaseStage appends to dockerfile a stage made of st's FROM line
// alone (its flags and base as written, under a new name), and returns
// the new file and that name. Appended last, it moves no line.
func appendBaseStage(dockerfile []byte, st *unifile.Stage) ([]byte, string, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, "", err
	}
	var from *parser.Node
	names := map[string]bool{}
	for _, n := range res.AST.Children {
		if !strings.EqualFold(n.Value, "from") {
			continue
		}
		if n.StartLine == st.Line {
			from = n
		}
		if w := nodeWords(n); len(w) == 4 && strings.EqualFold(w[2], "as") {
			names[strings.ToLower(w[3])] = true
		}
	}
	if from == nil || from.Next == nil {
		return nil, "", fmt.Errorf("line %d: no FROM where the stage starts", st.Line)
	}
	name := "uni-base"
	for i := 2; names[name]; i++ {
		name = fmt.Sprintf("uni-base-%d", i)
	}
	line := strings.Join(append(append([]string{"FROM"}, from.Flags...), from.Next.Value, "AS", name), " ")
	out := append([]byte{}, dockerfile...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, line+"\n"...), name, nil
}

// nodeWords are the words of an instruction after its keyword.
func nodeWords(n *parser.Node) []string {
	var w []string
	for a := n.Next; a != nil; a = a.Next {
		w = append(w, a.Value)
	}
	return append([]string{n.Value}, w...)
}

// kernelImageRef is the bundle image a KERNEL value names under BuildKit:
// the frontend's default for "linux", else an image reference. Aliases
// and paths of a local kernel cache mean nothing on a remote builder.
func kernelImageRef(kernelName, defaultRef string) (string, error) {
	if kernelName == "" || kernelName == kernel.DefaultName {
		if defaultRef == "" {
			return "", errors.New("this frontend image names no default kernel bundle: name one with KERNEL <image reference> (publish one with `uni kernel push`)")
		}
		return defaultRef, nil
	}
	if strings.HasPrefix(kernelName, "/") || strings.HasPrefix(kernelName, ".") || strings.HasSuffix(kernelName, ".deb") {
		return "", fmt.Errorf("KERNEL %s: a path on this machine means nothing to a BuildKit builder: push the bundle with `uni kernel push %s REGISTRY/REPO:TAG` and name that reference", kernelName, kernelName)
	}
	if !strings.ContainsAny(kernelName, "/:@") {
		return "", fmt.Errorf("KERNEL %s: under BuildKit a kernel bundle is an image: push it with `uni kernel push %s REGISTRY/REPO:TAG` and name that reference (or KERNEL linux for the frontend's default)", kernelName, kernelName)
	}
	if _, err := name.ParseReference(kernelName, name.StrictValidation); err != nil {
		if _, err2 := name.ParseReference(kernelName); err2 != nil {
			return "", fmt.Errorf("KERNEL %s: not an image reference: %w", kernelName, err2)
		}
	}
	return kernelName, nil
}

// atStep puts a core error on the line of st it is about, as `uni build`
// does (engine.StepLocation).
func atStep(u *unifile.Unifile, st *unifile.Stage, se *engine.StepError) error {
	loc, _ := engine.StepLocation(st, se, nil)
	return &unifile.Error{File: u.Filename, Line: loc.Line, Msg: se.Error(), Err: se}
}

// epochOf is SOURCE_DATE_EPOCH as dockerfile2llb read it (a build arg),
// else uni build's default, so both engines stamp the same time.
func epochOf(r *dockerfile2llb.Result) int64 {
	if r.Epoch == nil {
		return 0
	}
	return r.Epoch.Unix()
}

// appName names the app in the SBOM: the stage's name, else the program.
func appName(st *unifile.Stage) string {
	if st.Name != "" {
		return st.Name
	}
	if argv := st.Settings.Argv(); len(argv) > 0 {
		return path.Base(argv[0])
	}
	return ""
}

// stepName is the assembly step's name in BuildKit's progress display.
func stepName(s unifile.Settings) string {
	prog := "the entrypoint"
	if argv := s.Argv(); len(argv) > 0 {
		prog = argv[0]
	}
	return fmt.Sprintf("assemble unikernel: closure of %s, initrd, rootfs.img, config.json", prog)
}

// stageRanges are the lines of a stage, FROM to its last instruction.
func stageRanges(st *unifile.Stage) []*pb.Range {
	end := st.EndLine
	for _, ins := range st.Instructions {
		end = max(end, ins.Pos().EndLine)
	}
	return lineRanges(st.Line, end)
}

// lineRanges is one source range of whole lines.
func lineRanges(line, end int) []*pb.Range {
	end = max(end, line)
	return []*pb.Range{{Start: &pb.Position{Line: int32(line)}, End: &pb.Position{Line: int32(end)}}}
}
