package bkcompat

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// images are the base images the cases build on, by reference.
var images = map[string]unifile.ImageConfig{
	"example.test/base:1": {
		Env: []string{
			"PATH=/opt/base/bin:/usr/local/bin:/usr/bin:/bin",
			"APP_HOME=/srv/app",
			"GREETING=hello world",
			"EMPTY=",
			"PORT=9000",
			"RUNAS=app",
			"VERSION=v1.2.3",
			"ARCHIVE=data.tar.gz",
		},
		WorkingDir:   "/srv",
		User:         "daemon",
		Entrypoint:   []string{"/srv/bin/start"},
		Cmd:          []string{"--serve", "--port=9000"},
		ExposedPorts: map[string]struct{}{"9000/tcp": {}, "53/udp": {}},
		Labels:       map[string]string{"org.example.base": "1", "maintainer": "base"},
	},
	"example.test/base:2": {
		Env:        []string{"APP_HOME=/opt/two", "PORT=7000"},
		Entrypoint: []string{"/opt/two/run"},
	},
	// No PATH, a relative WorkingDir, a CMD only and a port without protocol.
	"example.test/bare:1": {
		Env:          []string{"LANG=C.UTF-8"},
		WorkingDir:   "rel/dir",
		Cmd:          []string{"/bin/app"},
		ExposedPorts: map[string]struct{}{"8080": {}},
	},
}

type compatCase struct {
	name      string
	src       string
	buildArgs map[string]string
}

var cases = []compatCase{
	{name: "base env in every expanding instruction", src: `FROM example.test/base:1
COPY app.js ${APP_HOME}/
COPY conf/ $APP_HOME/etc/
WORKDIR ${APP_HOME}/data
ENV GREETING2="${GREETING}!" HOMEDIR=$APP_HOME
LABEL home=${APP_HOME} greeting="$GREETING"
EXPOSE ${PORT} ${PORT}/udp
USER ${RUNAS}
`},
	{name: "default and alternative forms", src: `FROM example.test/base:1
ENV A=${NOPE:-default} B=${APP_HOME:+set} C=${EMPTY:-empty} D=${EMPTY-unset} E=${NOPE:+alt} F=${NOPE-x}
WORKDIR ${NOPE:-/fallback}/${APP_HOME:+sub}
USER ${NOPE:-1000}:${EMPTY:-0}
`},
	{name: "pattern removal", src: `FROM example.test/base:1
ENV V=${VERSION#v} BASE=${ARCHIVE%.tar.gz} EXT=${ARCHIVE##*.} DIR=${APP_HOME%/*}
LABEL version=${VERSION#v}
`},
	{name: "global ARG in FROM, redeclared in the stage", src: `ARG TAG=1
ARG REG=example.test
FROM ${REG}/base:${TAG}
ARG TAG
ENV T=$TAG R=${REG:-undeclared}
`},
	{name: "global ARG default from another", src: `ARG REG=example.test
ARG IMG=${REG}/base:1
FROM ${IMG}
ARG IMG
LABEL from=$IMG
`},
	{name: "build args override defaults", buildArgs: map[string]string{"TAG": "2", "LOCAL": "given"}, src: `ARG TAG=1
FROM example.test/base:${TAG}
ARG LOCAL=default
ARG TAG
ENV L=$LOCAL T=$TAG H=$APP_HOME P=$PORT
`},
	{name: "undeclared build arg has no effect", buildArgs: map[string]string{"UNUSED": "x"}, src: `FROM example.test/base:1
ENV U=${UNUSED:-none}
`},
	{name: "ENV after ARG shadows it", src: `FROM example.test/base:1
ARG X=arg
ENV X=env
ENV Y=$X
`},
	{name: "ARG after ENV", src: `FROM example.test/base:1
ENV X=env
ARG X=arg
ENV Y=$X
`},
	{name: "ARG shadows a base env var", src: `FROM example.test/base:1
ARG APP_HOME=/other
WORKDIR $APP_HOME
ENV SEEN=$APP_HOME
`},
	{name: "ARG default from base env", src: `FROM example.test/base:1
ARG DIR=${APP_HOME}/x
WORKDIR $DIR
ENV D=$DIR
`},
	{name: "multi-stage inheritance", src: `FROM example.test/base:1 AS one
ARG STAGEARG=from-one
ENV ONE=1
WORKDIR sub
CMD ["/one"]

FROM one AS two
ENV TWO=${ONE}2 ARGSEEN=${STAGEARG:-lost} HOME2=$APP_HOME
WORKDIR more
COPY --from=one /srv/sub/x ./
`},
	{name: "stage built FROM an earlier stage that set ENTRYPOINT and CMD", src: `FROM example.test/base:2 AS one
ENTRYPOINT ["/one"]
CMD ["a"]

FROM one
ENTRYPOINT ["/two"]
`},
	{name: "ENTRYPOINT resets the base image's CMD", src: `FROM example.test/base:1
ENTRYPOINT ["/bin/app"]
`},
	{name: "CMD before ENTRYPOINT in the stage is kept", src: `FROM example.test/base:1
CMD ["--own"]
ENTRYPOINT ["/bin/app"]
`},
	{name: "CMD only keeps the base ENTRYPOINT", src: `FROM example.test/base:1
CMD ["--other"]
`},
	{name: "WORKDIR relative chains", src: `FROM example.test/base:1
WORKDIR a
WORKDIR b/../c
WORKDIR ./d/
COPY x.txt ../
`},
	{name: "WORKDIR absolute kept as written", src: `FROM example.test/base:1
WORKDIR /x/./y/
`},
	{name: "base with relative WORKDIR, no PATH, CMD only", src: `FROM example.test/bare:1
WORKDIR next
ENV P=$PATH:/extra L=$LANG
`},
	{name: "PATH extended", src: `FROM example.test/base:1
ENV PATH=/app/bin:$PATH
ENV P2=$PATH
`},
	{name: "scratch gets PATH", src: `FROM scratch
ENV P=$PATH HOME=/root
WORKDIR app
CMD ["/hello"]
`},
	{name: "labels merge with the base's", src: `FROM example.test/base:1
LABEL maintainer=me org.example.app=${APP_HOME}
`},
	{name: "ports and ranges", src: `FROM example.test/base:1
EXPOSE 8000-8002 53/udp 9000 7000/UDP
`},
	{name: "heredocs", src: `FROM example.test/base:1
COPY <<EOF /etc/app.conf
home=${APP_HOME}
greeting="$GREETING"
EOF
COPY <<'EOF' raw.conf
home=${APP_HOME}
EOF
COPY <<-EOF ${APP_HOME}/tabs.conf
	port=$PORT
	EOF
`},
	{name: "escapes", src: `FROM example.test/base:1
ENV LIT=\$APP_HOME Q='$APP_HOME' DQ="$APP_HOME" MIX=a\ b
LABEL x="\${APP_HOME}" y=${APP_HOME}\$
WORKDIR /w/\$APP_HOME
`},
	{name: "escape directive", src: "# escape=`\n" + `FROM example.test/base:1
ENV A=` + "`" + `$APP_HOME B=$APP_HOME\x
WORKDIR /a\b
COPY f.txt c:\dir\ ` + "`" + `
    /dest/
`},
	{name: "automatic platform ARGs", src: `FROM --platform=$BUILDPLATFORM example.test/base:1
ARG TARGETARCH
ARG TARGETOS
ARG TARGETPLATFORM
ENV ARCH=$TARGETARCH OS=$TARGETOS PLAT=$TARGETPLATFORM UNDECLARED=${BUILDARCH:-no}
`},
	{name: "automatic ARGs overridden by a build arg", buildArgs: map[string]string{"TARGETARCH": "arm64"}, src: `FROM example.test/base:1
ARG TARGETARCH
ENV ARCH=$TARGETARCH
`},
	{name: "TARGETSTAGE", src: `FROM example.test/base:1 AS final
ARG TARGETSTAGE
ENV S=$TARGETSTAGE
`},
	{name: "ENV sees the values before the instruction", src: `FROM example.test/base:1
ENV APP_HOME=/new OLD=$APP_HOME
ENV NEW=$APP_HOME
`},
	{name: "continuations and comments", src: `FROM example.test/base:1
ENV A=1 \
    # a comment inside
    B=${A}2
LABEL a="$A" \
      b="$B"
`},
	{name: "unikernel keywords stripped", src: `FROM example.test/base:1
KERNEL linux
MEMORY 256M
CPUS 2
INCLUDE /etc/ssl/certs \
        ${APP_HOME}/data
ENV AFTER=$APP_HOME
WORKDIR $APP_HOME
`},
	{name: "USER from base kept", src: `FROM example.test/base:1
ENV X=1
`},
	{name: "empty ENTRYPOINT clears the base's", src: `FROM example.test/base:1
ENTRYPOINT []
CMD ["/bin/app"]
`},
	{name: "global ARG named like a base env var", src: `ARG PORT=1
FROM example.test/base:1 AS before
ENV P=$PORT
FROM example.test/base:1
ARG PORT
ENV P=$PORT
EXPOSE $PORT
`},
	{name: "build arg for a stage ARG named like a base env var", buildArgs: map[string]string{"APP_HOME": "/given"}, src: `FROM example.test/base:1
ENV BEFORE=$APP_HOME
ARG APP_HOME
ENV AFTER=$APP_HOME
WORKDIR $APP_HOME
`},
	{name: "ENV keys expanded", src: `FROM example.test/base:1
ARG NAME=DYNAMIC
ENV ${NAME}_HOME=$APP_HOME
LABEL ${NAME}=yes
`},
	{name: "COPY destination relative to a WORKDIR from base env", src: `FROM example.test/base:2
WORKDIR $APP_HOME
COPY a b c/
COPY d ./
COPY e ${PORT}.txt
`},
}

func TestSameAsBuildKit(t *testing.T) {
	if len(cases) < 20 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ours := fromUnifile(t, c)
			theirs := fromBuildKit(t, c)
			if !ours.equal(theirs) {
				t.Errorf("the image configs differ\n   unifile: %s\n  buildkit: %s", ours, theirs)
			}
		})
	}
}

// outcome is what both sides are compared on.
type outcome struct {
	Env          []string
	WorkingDir   string
	User         string
	Entrypoint   []string
	Cmd          []string
	ExposedPorts []string // "80/tcp", sorted
	Labels       map[string]string
	CopyDests    []string // absolute, cleaned, "/" kept at the end; sorted
	Inline       []string // heredoc file contents, sorted
}

func (o outcome) equal(p outcome) bool {
	eq := func(a, b []string) bool { return len(a) == 0 && len(b) == 0 || slices.Equal(a, b) }
	return eq(o.Env, p.Env) && o.WorkingDir == p.WorkingDir && o.User == p.User &&
		eq(o.Entrypoint, p.Entrypoint) && eq(o.Cmd, p.Cmd) && eq(o.ExposedPorts, p.ExposedPorts) &&
		maps.Equal(o.Labels, p.Labels) && eq(o.CopyDests, p.CopyDests) && eq(o.Inline, p.Inline)
}

func (o outcome) String() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// copyDest is how both sides' COPY destinations are compared: joined to
// the working directory, cleaned, a trailing "/" kept.
func copyDest(workdir, dest string) string {
	if path.IsAbs(dest) {
		workdir = "/"
	}
	full := path.Clean(path.Join("/", workdir, dest))
	if strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") {
		if full != "/" {
			full += "/"
		}
	}
	return full
}

func fromUnifile(t *testing.T, c compatCase) outcome {
	t.Helper()
	var asked []string
	u, err := unifile.Parse(strings.NewReader(c.src), unifile.Options{
		BuildArgs:      c.buildArgs,
		TargetPlatform: "linux/amd64",
		BuildPlatform:  "linux/amd64",
		BaseImage: func(ref, platform string) (*unifile.ImageConfig, error) {
			asked = append(asked, ref)
			cfg, ok := images[ref]
			if !ok {
				return nil, fmt.Errorf("no test image %s", ref)
			}
			return &cfg, nil
		},
	})
	if err != nil {
		t.Fatalf("unifile: %v", err)
	}
	s := u.Final().Settings
	o := outcome{
		Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
		Entrypoint: s.Entrypoint, Cmd: s.Cmd, Labels: s.Labels,
	}
	for _, p := range s.ExposedPorts {
		o.ExposedPorts = append(o.ExposedPorts, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	slices.Sort(o.ExposedPorts)
	for _, st := range u.Stages {
		for _, in := range st.Instructions {
			cp, ok := in.(*unifile.Copy)
			if !ok {
				continue
			}
			for range len(cp.Sources) + len(cp.Inline) {
				o.CopyDests = append(o.CopyDests, copyDest(cp.Workdir, cp.Dest))
			}
			for _, f := range cp.Inline {
				o.Inline = append(o.Inline, f.Content)
			}
		}
	}
	slices.Sort(o.CopyDests)
	slices.Sort(o.Inline)
	return o
}

// resolver gives BuildKit the same base image configs, with no network.
type resolver struct{ t *testing.T }

func (r resolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, ok := images[ref]
	if !ok {
		return "", "", nil, fmt.Errorf("no test image %s", ref)
	}
	img := dockerspec.DockerOCIImage{
		Image: ocispecs.Image{
			Platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"},
			RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(ref)}},
		},
		Config: dockerspec.DockerOCIImageConfig{ImageConfig: ocispecs.ImageConfig{
			Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User,
			Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd,
			ExposedPorts: cfg.ExposedPorts, Labels: cfg.Labels,
		}},
	}
	dt, err := json.Marshal(img)
	return ref, "", dt, err
}

func fromBuildKit(t *testing.T, c compatCase) outcome {
	t.Helper()
	src, err := unifile.StripUnikernelKeywords([]byte(c.src))
	if err != nil {
		t.Fatalf("strip: %v", err)
	}
	amd64 := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	res, err := dockerfile2llb.Dockerfile2LLB(context.Background(), src, dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			BuildArgs:      c.buildArgs,
			BuildPlatforms: []ocispecs.Platform{amd64},
		},
		TargetPlatform: &amd64,
		MetaResolver:   resolver{t},
	})
	if err != nil {
		t.Fatalf("buildkit: %v", err)
	}
	ic := res.Image.Config
	o := outcome{
		Env: ic.Env, WorkingDir: ic.WorkingDir, User: ic.User,
		Entrypoint: ic.Entrypoint, Cmd: ic.Cmd, Labels: ic.Labels,
	}
	for p := range ic.ExposedPorts {
		// A key without a protocol is tcp, as Docker reads it.
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		o.ExposedPorts = append(o.ExposedPorts, strings.ToLower(p))
	}
	slices.Sort(o.ExposedPorts)
	def, err := res.State.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		for _, a := range op.GetFile().GetActions() {
			if cp := a.GetCopy(); cp != nil {
				o.CopyDests = append(o.CopyDests, copyDest("/", cp.Dest))
			}
			if mk := a.GetMkfile(); mk != nil {
				o.Inline = append(o.Inline, string(mk.Data))
			}
		}
	}
	slices.Sort(o.CopyDests)
	slices.Sort(o.Inline)
	return o
}
