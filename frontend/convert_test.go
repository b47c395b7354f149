package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

const testKernel = "127.0.0.1:5000/uniforge/kernel:6.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testOpt() ConvertOpt {
	// One build context for every conversion, as dockerui's client gives.
	bctx := llb.Local("context")
	return ConvertOpt{DefaultKernel: testKernel, Assembler: llb.Image("127.0.0.1:5000/uniforge/unifile:test"), MainContext: &bctx}
}

// graph is a marshalled LLB definition, indexed by digest.
type graph struct {
	ops  map[digest.Digest]*pb.Op
	meta map[digest.Digest]llb.OpMetadata
}

func marshal(t *testing.T, st llb.State) *graph {
	t.Helper()
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g := &graph{ops: map[digest.Digest]*pb.Op{}, meta: map[digest.Digest]llb.OpMetadata{}}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(dt)
		g.ops[d] = &op
		if m, ok := def.Metadata[d]; ok {
			g.meta[d] = m
		}
	}
	return g
}

// exec is the exec op of the graph that runs the given subcommand.
func (g *graph) exec(t *testing.T, sub string) (*pb.Op, digest.Digest) {
	t.Helper()
	var found *pb.Op
	var fd digest.Digest
	for d, op := range g.ops {
		if args := op.GetExec().GetMeta().GetArgs(); len(args) > 1 && args[1] == sub {
			if found != nil {
				t.Fatal("more than one exec op")
			}
			found, fd = op, d
		}
	}
	if found == nil {
		t.Fatal("no exec op")
	}
	return found, fd
}

// input is the op behind the mount at dest of the exec op.
func (g *graph) input(t *testing.T, op *pb.Op, dest string) (*pb.Op, *pb.Mount) {
	t.Helper()
	for _, m := range op.GetExec().Mounts {
		if m.Dest != dest {
			continue
		}
		if m.Input < 0 {
			return nil, m
		}
		return g.ops[digest.Digest(op.Inputs[m.Input].Digest)], m
	}
	t.Fatalf("no mount at %s", dest)
	return nil, nil
}

func TestConvertAssemblyStep(t *testing.T) {
	src := `# syntax=example/unifile
FROM scratch AS base
COPY etc /etc
FROM base AS app
COPY hello /app/hello
KERNEL linux
MEMORY 96M
INCLUDE /etc
ENV GREETING=hi
EXPOSE 8080
ENTRYPOINT ["/app/hello"]
`
	c, err := Convert(context.Background(), []byte(src), testOpt())
	if err != nil {
		t.Fatal(err)
	}
	if c.KernelRef != testKernel {
		t.Errorf("kernel ref %q, want the frontend's default", c.KernelRef)
	}
	g := marshal(t, c.Layout)
	ex, d := g.exec(t, "assemble")
	if got := strings.Join(ex.GetExec().Meta.Args, " "); got != "/bin/uni-frontend assemble /uni/request.json" {
		t.Errorf("args %q", got)
	}
	if len(ex.GetExec().Meta.Env) != 0 {
		t.Errorf("the assembly step gets an environment: %v", ex.GetExec().Meta.Env)
	}
	if ex.GetExec().Network != pb.NetMode_NONE {
		t.Errorf("network %v, want none", ex.GetExec().Network)
	}
	if name := g.meta[d].Description["llb.customname"]; !strings.Contains(name, "assemble unikernel") || !strings.Contains(name, "/app/hello") {
		t.Errorf("step name %q", name)
	}
	for _, dest := range []string{"/", "/uni", "/stage", "/added", "/kernel", "/verified"} {
		if _, m := g.input(t, ex, dest); !m.Readonly {
			t.Errorf("%s is mounted writable", dest)
		}
	}
	for _, dest := range []string{"/out", "/status"} {
		if _, m := g.input(t, ex, dest); m.Readonly || m.Output < 0 {
			t.Errorf("%s is not an output: %+v", dest, m)
		}
	}
	if op, _ := g.input(t, ex, "/added"); op.GetDiff() == nil {
		t.Errorf("/added is %T, want a diff of the stage over its base", op.Op)
	}
	if op, _ := g.input(t, ex, "/kernel"); op.GetSource().GetIdentifier() != "docker-image://"+testKernel {
		t.Errorf("/kernel is %v", op.GetSource())
	}
	// The bundle is verified by a step of its own, which BuildKit caches.
	vex, _ := g.exec(t, "verify-kernel")
	if op, _ := g.input(t, ex, "/verified"); op != vex {
		t.Errorf("/verified is not the verify step's output: %v", op)
	}
	if op, m := g.input(t, vex, "/kernel"); !m.Readonly || op.GetSource().GetIdentifier() != "docker-image://"+testKernel {
		t.Errorf("the verify step's /kernel is %v", op)
	}
	op, _ := g.input(t, ex, "/uni")
	fa := op.GetFile().GetActions()
	if len(fa) != 1 || fa[0].GetMkfile() == nil {
		t.Fatalf("/uni is %v, want one file", op)
	}
	var req Request
	if err := json.Unmarshal(fa[0].GetMkfile().Data, &req); err != nil {
		t.Fatal(err)
	}
	if req.Settings.MemoryBytes != 96<<20 || req.KernelName != "linux" || req.Name != "app" ||
		strings.Join(req.Settings.Includes, ",") != "/etc" || req.Settings.Argv()[0] != "/app/hello" {
		t.Errorf("request %+v", req)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("uni and BuildKit read the config differently: %v", c.Warnings)
	}
}

// TestConvertBaseIsTheStageStart: the diff's lower side is the stage the
// last one starts from, whatever comes before it.
func TestConvertBaseIsTheStageStart(t *testing.T) {
	src := `FROM scratch AS build
COPY a /a
FROM build
COPY b /b
ENTRYPOINT ["/b"]
`
	c, err := Convert(context.Background(), []byte(src), testOpt())
	if err != nil {
		t.Fatal(err)
	}
	// One definition holds both sides of the diff: they share every
	// vertex up to the base, so the context is read and /a copied once.
	g := marshal(t, c.Added)
	var locals, diffs int
	copies := map[string]int{}
	for _, op := range g.ops {
		if strings.HasPrefix(op.GetSource().GetIdentifier(), "local://") {
			locals++
		}
		if op.GetDiff() != nil {
			diffs++
		}
		for _, a := range op.GetFile().GetActions() {
			if cp := a.GetCopy(); cp != nil {
				copies[cp.Dest]++
			}
		}
	}
	if locals != 1 || diffs != 1 || copies["/a"] != 1 || copies["/b"] != 1 || len(copies) != 2 {
		t.Errorf("%d local sources, %d diffs, copies %v; want 1, 1, /a and /b once", locals, diffs, copies)
	}
	base := marshal(t, c.Base)
	for _, op := range base.ops {
		for _, a := range op.GetFile().GetActions() {
			if cp := a.GetCopy(); cp != nil && cp.Dest != "/a" {
				t.Errorf("the base copies %s", cp.Dest)
			}
		}
	}
}

func TestConvertErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		opt       func(*ConvertOpt)
		line      int
		want      string
	}{
		{"from host", "FROM scratch AS a\nFROM host\nENTRYPOINT [\"/x\"]\n", nil, 2, "FROM host"},
		{"shell form", "FROM scratch\nCOPY x /x\nENTRYPOINT /x --flag\n", nil, 3, "JSON"},
		{"kernel path", "FROM scratch\nKERNEL ./bundle\nENTRYPOINT [\"/x\"]\n", nil, 2, "uni kernel push"},
		{"kernel alias", "FROM scratch\nKERNEL linux-mini\nENTRYPOINT [\"/x\"]\n", nil, 2, "uni kernel push"},
		{"no default kernel", "FROM scratch\nENTRYPOINT [\"/x\"]\n", func(o *ConvertOpt) { o.DefaultKernel = "" }, 1, "KERNEL <image reference>"},
		{"syntax", "FROM scratch\nENTRYPOINT [\"/x\"\n", nil, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := testOpt()
			if tc.opt != nil {
				tc.opt(&opt)
			}
			_, err := Convert(context.Background(), []byte(tc.src), opt)
			var ue *unifile.Error
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T), want a *unifile.Error", err, err)
			}
			if ue.Line != tc.line || !strings.Contains(ue.Msg, tc.want) {
				t.Errorf("error at line %d: %q; want line %d mentioning %q", ue.Line, ue.Msg, tc.line, tc.want)
			}
		})
	}
}

func TestConvertTargetAndPlatform(t *testing.T) {
	src := "FROM scratch AS one\nCOPY a /a\nENTRYPOINT [\"/a\"]\nFROM scratch AS two\nCOPY b /b\nENTRYPOINT [\"/b\"]\n"
	opt := testOpt()
	opt.Config = dockerui.Config{Target: "one"}
	c, err := Convert(context.Background(), []byte(src), opt)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stage.Name != "one" || c.Request.Settings.Argv()[0] != "/a" {
		t.Errorf("--target one built stage %q running %v", c.Stage.Name, c.Request.Settings.Argv())
	}
	opt.Config = dockerui.Config{Target: "three"}
	if _, err := Convert(context.Background(), []byte(src), opt); err == nil || !strings.Contains(err.Error(), "three") {
		t.Errorf("an unknown target: %v", err)
	}
	opt = testOpt()
	opt.Config.TargetPlatforms = append(opt.Config.TargetPlatforms, platformOf("linux", "arm64"))
	if _, err := Convert(context.Background(), []byte(src), opt); err == nil || !strings.Contains(err.Error(), "amd64") {
		t.Errorf("an arm64 build: %v", err)
	}
}

func TestAppendBaseStage(t *testing.T) {
	src := "ARG BASE=alpine\nFROM --platform=$BUILDPLATFORM ${BASE} AS uni-base\nRUN x\nFROM uni-base\nCOPY a /a"
	u, err := unifile.Parse(strings.NewReader(src), unifile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"FROM --platform=$BUILDPLATFORM ${BASE} AS uni-base-2", "FROM uni-base AS uni-base-2"} {
		out, name, err := appendBaseStage([]byte(src), u.Stages[i])
		if err != nil {
			t.Fatal(err)
		}
		if name != "uni-base-2" || string(out) != src+"\n"+want+"\n" {
			t.Errorf("stage %d: %q named %q", i, out, name)
		}
	}
}

func platformOf(os, arch string) ocispecs.Platform {
	return ocispecs.Platform{OS: os, Architecture: arch}
}

// TestSubrequestsSeeNoUnikernelKeywords: --print=targets and --check work
// on a Unifile, whose KERNEL, MEMORY, CPUS and INCLUDE BuildKit does not know.
func TestSubrequestsSeeNoUnikernelKeywords(t *testing.T) {
	src := "FROM scratch AS build\nCOPY a /a\n\n# the app\nFROM scratch AS app\nKERNEL linux\nMEMORY 96M\nCPUS 2\nINCLUDE /etc\nCOPY --from=build /a /a\nENTRYPOINT [\"/a\"]\n"
	opt := testOpt()
	opt.SourceMap = llb.NewSourceMap(nil, "Unifile", "Dockerfile", []byte(src))
	opt.SourceMap.Definition = &llb.Definition{} // as dockerui sets it
	h, err := Subrequests([]byte(src), opt)
	if err != nil {
		t.Fatal(err)
	}
	list, err := h.ListTargets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range list.Targets {
		names = append(names, tg.Name)
	}
	if strings.Join(names, ",") != "build,app" {
		t.Errorf("targets %v, want build and app", names)
	}
	res, err := h.Lint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w.Detail, "KERNEL") || strings.Contains(w.Description, "nknown") {
			t.Errorf("lint saw a unikernel keyword: %+v", w)
		}
	}
	if res.Error != nil {
		t.Errorf("lint error: %+v", res.Error)
	}
}

// countingResolver answers every image with one config and counts the
// questions.
type countingResolver struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *countingResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[ref]++
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin","FROM_BASE=1"]},"rootfs":{"type":"layers","diff_ids":[]}}`)
	return ref, digest.FromBytes(cfg), cfg, nil
}

// TestConvertAsksForEachBaseOnce: uni's parser and both dockerfile2llb
// conversions need the base image's config; the daemon is asked once.
func TestConvertAsksForEachBaseOnce(t *testing.T) {
	r := &countingResolver{calls: map[string]int{}}
	opt := testOpt()
	opt.MetaResolver = r
	c, err := Convert(context.Background(), []byte("FROM example.com/base:1\nCOPY a /a\nENTRYPOINT [\"/a\"]\n"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.calls["example.com/base:1"]; n != 1 {
		t.Errorf("the base image's config was asked for %d times, want once", n)
	}
	if c.Request.BaseImageDigest == "" || !slices.Contains(c.Request.Settings.Env, "FROM_BASE=1") {
		t.Errorf("the base's config did not reach the request: %+v", c.Request)
	}
}
