package unifile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// pathEnv is the PATH every stage gets when its base sets none, as in BuildKit.
const pathEnv = "PATH=" + DefaultPath

// parse parses src and fails the test on an error.
func parse(t *testing.T, src string, opts Options) *Unifile {
	t.Helper()
	u, err := Parse(strings.NewReader(src), opts)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return u
}

// final parses a last stage made of body, with a FROM before and an
// ENTRYPOINT after so that the file is complete.
func final(t *testing.T, body string) *Stage {
	t.Helper()
	return parse(t, "FROM scratch\n"+body+"\nENTRYPOINT [\"/app\"]\n", Options{}).Final()
}

func TestDefaults(t *testing.T) {
	s := parse(t, "FROM scratch\nCMD [\"/hello\"]\n", Options{}).Final()
	want := Settings{Cmd: []string{"/hello"}, Env: []string{pathEnv}, Kernel: "linux", MemoryBytes: 128 << 20, CPUs: 1}
	if !reflect.DeepEqual(s.Settings, want) {
		t.Errorf("settings = %+v, want %+v", s.Settings, want)
	}
	if s.Base.Kind != BaseScratch || s.Index != 0 || s.Line != 1 {
		t.Errorf("stage = %+v", s)
	}
	if len(s.Instructions) != 1 || s.Instructions[0].Keyword() != "CMD" || s.Instructions[0].Pos().Line != 2 {
		t.Errorf("instructions = %#v", s.Instructions)
	}
}

func TestFrom(t *testing.T) {
	tests := []struct {
		src  string
		want Base
		name string
	}{
		{"FROM scratch", Base{Kind: BaseScratch}, ""},
		{"FROM host AS app", Base{Kind: BaseHost}, "app"},
		{"FROM node:20-slim as App", Base{Kind: BaseImage, Ref: "node:20-slim"}, "app"},
		{"FROM localhost:5000/a/b@sha256:" + strings.Repeat("ab", 32), Base{Kind: BaseImage, Ref: "localhost:5000/a/b@sha256:" + strings.Repeat("ab", 32)}, ""},
		{"FROM --platform=linux/amd64 debian:12", Base{Kind: BaseImage, Ref: "debian:12"}, ""},
	}
	for _, tt := range tests {
		u := parse(t, tt.src+"\nCMD [\"x\"]\n", Options{})
		if got := u.Final(); got.Base != tt.want || got.Name != tt.name {
			t.Errorf("%q: base %+v name %q, want %+v %q", tt.src, got.Base, got.Name, tt.want, tt.name)
		}
	}
}

func TestEnv(t *testing.T) {
	s := final(t, `ENV A=1 B="two words" C=
ENV LEGACY value with spaces
ENV A=3 D=$A
ENV E=${B:-x}/${NOPE:-dflt}`)
	want := []string{pathEnv, "A=3", "B=two words", "C=", "LEGACY=value with spaces", "D=1", "E=two words/dflt"}
	if !reflect.DeepEqual(s.Env, want) {
		t.Errorf("Env = %q, want %q", s.Env, want)
	}
	env := s.Instructions[0].(*Env)
	if len(env.Vars) != 3 || env.Vars[1] != (KeyValue{"B", "two words"}) {
		t.Errorf("ENV instruction = %+v", env)
	}
}

func TestLabel(t *testing.T) {
	s := final(t, "ARG V=1.2\nLABEL version=$V \"org.x.y\"=\"a b\"\nLABEL version=2")
	want := map[string]string{"version": "2", "org.x.y": "a b"}
	if !reflect.DeepEqual(s.Labels, want) {
		t.Errorf("Labels = %v, want %v", s.Labels, want)
	}
	if l := s.Instructions[1].(*Label); l.Labels[0].Value != "1.2" {
		t.Errorf("LABEL = %+v", l)
	}
}

func TestWorkdir(t *testing.T) {
	tests := []struct{ body, want string }{
		{"WORKDIR /app", "/app"},
		{"WORKDIR app", "/app"},
		{"WORKDIR /a\nWORKDIR b/c\nWORKDIR ../d", "/a/b/d"},
		// As in BuildKit, an absolute WORKDIR is kept as written.
		{"WORKDIR /a/\nWORKDIR /x/./y/", "/x/./y/"},
		{"WORKDIR /x/./y/\nWORKDIR z", "/x/y/z"},
		{"ENV D=/srv\nWORKDIR $D/www", "/srv/www"},
	}
	for _, tt := range tests {
		if got := final(t, tt.body).WorkingDir; got != tt.want {
			t.Errorf("%q: WorkingDir = %q, want %q", tt.body, got, tt.want)
		}
	}
	c := final(t, "WORKDIR /w\nCOPY a b").Instructions[1].(*Copy)
	if c.Workdir != "/w" {
		t.Errorf("COPY after WORKDIR has Workdir %q", c.Workdir)
	}
}

func TestExpose(t *testing.T) {
	s := final(t, "EXPOSE 80 53/udp 8000-8002\nEXPOSE 80/tcp 443/TCP\nARG P=9000\nEXPOSE $P")
	want := []spec.Port{{Port: 80, Protocol: "tcp"}, {Port: 443, Protocol: "tcp"}, {Port: 8000, Protocol: "tcp"}, {Port: 8001, Protocol: "tcp"}, {Port: 8002, Protocol: "tcp"}, {Port: 9000, Protocol: "tcp"}, {Port: 53, Protocol: "udp"}}
	if !reflect.DeepEqual(s.ExposedPorts, want) {
		t.Errorf("ExposedPorts = %v, want %v", s.ExposedPorts, want)
	}
	if e := s.Instructions[0].(*Expose); len(e.Ports) != 5 {
		t.Errorf("first EXPOSE = %v", e.Ports)
	}
}

func TestUser(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{"USER 1000", "1000"}, {"USER 1000:1000", "1000:1000"}, {"USER node", "node"}, {"ARG U=app\nUSER $U:$U", "app:app"},
	} {
		if got := final(t, tt.body).User; got != tt.want {
			t.Errorf("%q: User = %q, want %q", tt.body, got, tt.want)
		}
	}
	u, _ := ParseUserSpec("1000:50")
	if uid, ok := u.UID(); !ok || uid != 1000 {
		t.Errorf("UID = %d %v", uid, ok)
	}
	if gid, ok := u.GID(); !ok || gid != 50 {
		t.Errorf("GID = %d %v", gid, ok)
	}
	n, _ := ParseUserSpec("node")
	if _, ok := n.UID(); ok {
		t.Error("a name parsed as a uid")
	}
	if _, ok := n.GID(); ok {
		t.Error("a missing group parsed as a gid")
	}
}

func TestEntrypointCmd(t *testing.T) {
	tests := []struct {
		body       string
		entrypoint []string
		cmd        []string
	}{
		{`ENTRYPOINT ["node", "hi.js"]`, []string{"node", "hi.js"}, nil},
		{`CMD ["/bin/app", "-v"]`, nil, []string{"/bin/app", "-v"}},
		{`ENTRYPOINT ["/app"]` + "\n" + `CMD ["--port", "80"]`, []string{"/app"}, []string{"--port", "80"}},
		// CMD of this stage survives a later ENTRYPOINT, as in Docker.
		{`CMD ["a"]` + "\n" + `ENTRYPOINT ["/app"]`, []string{"/app"}, []string{"a"}},
		// Exec form is never expanded.
		{`ENV X=1` + "\n" + `CMD ["echo", "$X"]`, nil, []string{"echo", "$X"}},
	}
	for _, tt := range tests {
		s := parse(t, "FROM scratch\n"+tt.body+"\n", Options{}).Final()
		if !reflect.DeepEqual(s.Entrypoint, tt.entrypoint) || !reflect.DeepEqual(s.Cmd, tt.cmd) {
			t.Errorf("%q: entrypoint %q cmd %q, want %q %q", tt.body, s.Entrypoint, s.Cmd, tt.entrypoint, tt.cmd)
		}
		if want := append(append([]string{}, tt.entrypoint...), tt.cmd...); !reflect.DeepEqual(s.Argv(), want) {
			t.Errorf("%q: Argv = %q, want %q", tt.body, s.Argv(), want)
		}
	}
	// An ENTRYPOINT drops the CMD inherited from an earlier stage.
	u := parse(t, "FROM scratch AS base\nCMD [\"old\"]\nFROM base\nENTRYPOINT [\"/new\"]\n", Options{})
	if s := u.Final(); s.Cmd != nil || !reflect.DeepEqual(s.Entrypoint, []string{"/new"}) {
		t.Errorf("inherited CMD kept: %q %q", s.Entrypoint, s.Cmd)
	}
}

func TestUnikernelKeywords(t *testing.T) {
	s := final(t, `KERNEL ghcr.io/uniforge/kernel:6.1
MEMORY 1G
CPUS 4
INCLUDE /etc/ssl/certs /usr/share/zoneinfo/
INCLUDE ["/etc/ssl/certs", "/etc/a b"]
ARG DIR=/opt
INCLUDE $DIR/x/../y`)
	if s.Kernel != "ghcr.io/uniforge/kernel:6.1" || s.MemoryBytes != 1<<30 || s.CPUs != 4 {
		t.Errorf("kernel %q memory %d cpus %d", s.Kernel, s.MemoryBytes, s.CPUs)
	}
	want := []string{"/etc/a b", "/etc/ssl/certs", "/opt/y", "/usr/share/zoneinfo"}
	if !reflect.DeepEqual(s.Includes, want) {
		t.Errorf("Includes = %q, want %q", s.Includes, want)
	}
	if k := final(t, "KERNEL ./kernels/my-bundle").Kernel; k != "./kernels/my-bundle" {
		t.Errorf("local kernel path = %q", k)
	}
}

func TestMemorySizes(t *testing.T) {
	for in, want := range map[string]int64{
		"128M": 128 << 20, "128m": 128 << 20, "512MiB": 512 << 20, "1G": 1 << 30, "2GB": 2 << 30,
		"32M": 32 << 20, "64G": 64 << 30, "65536K": 64 << 20, "33554432": 32 << 20,
	} {
		if got := final(t, "MEMORY "+in).MemoryBytes; got != want {
			t.Errorf("MEMORY %s = %d, want %d", in, got, want)
		}
	}
}

func TestCopy(t *testing.T) {
	u := parse(t, `FROM golang:1.22 AS build
FROM scratch AS assets
FROM scratch
ARG APP=hi
COPY --from=build --chmod=0755 --chown=1000:1000 /src/${APP} /app/
COPY --from=1 a* b/ /dst/
COPY --from=alpine:3 /etc/ssl /etc/ssl
COPY ["with space.txt", "/x/"]
COPY --link . .
COPY --chmod=644 <<EOT /etc/motd
hi $APP
EOT
COPY <<'RAW' /raw
keep $APP "quoted"
RAW
ENTRYPOINT ["/app/hi"]
`, Options{})
	var copies []*Copy
	for _, in := range u.Final().Instructions {
		if c, ok := in.(*Copy); ok {
			copies = append(copies, c)
		}
	}
	mode := uint32(0o755)
	want := []*Copy{
		{Location: Location{5, 5}, Sources: []string{"/src/hi"}, Dest: "/app/", Workdir: "/",
			From: CopyFrom{Kind: FromStage, Stage: 0, Ref: "build"}, Chmod: &mode, Chown: "1000:1000"},
		{Location: Location{6, 6}, Sources: []string{"a*", "b/"}, Dest: "/dst/", Workdir: "/",
			From: CopyFrom{Kind: FromStage, Stage: 1, Ref: "1"}},
		{Location: Location{7, 7}, Sources: []string{"/etc/ssl"}, Dest: "/etc/ssl", Workdir: "/",
			From: CopyFrom{Kind: FromImage, Ref: "alpine:3"}},
		{Location: Location{8, 8}, Sources: []string{"with space.txt"}, Dest: "/x/", Workdir: "/"},
		{Location: Location{9, 9}, Sources: []string{"."}, Dest: ".", Workdir: "/", Link: true},
	}
	if len(copies) != 7 {
		t.Fatalf("%d COPYs, want 7", len(copies))
	}
	for i, w := range want {
		if !reflect.DeepEqual(copies[i], w) {
			t.Errorf("COPY %d = %+v\nwant %+v", i, copies[i], w)
		}
	}
	heredoc := copies[5]
	if heredoc.Line != 10 || heredoc.EndLine != 12 || *heredoc.Chmod != 0o644 ||
		!reflect.DeepEqual(heredoc.Inline, []InlineFile{{Name: "EOT", Content: "hi hi\n"}}) || heredoc.Sources != nil {
		t.Errorf("heredoc COPY = %+v", heredoc)
	}
	if raw := copies[6]; raw.Line != 13 || raw.Inline[0].Content != "keep $APP \"quoted\"\n" {
		t.Errorf("quoted heredoc COPY = %+v", raw)
	}
}

func TestIgnoredWarn(t *testing.T) {
	u := parse(t, `FROM scratch
HEALTHCHECK CMD ["/check"]
SHELL ["/bin/bash", "-c"]
VOLUME /data
STOPSIGNAL SIGTERM
ONBUILD COPY a b
MAINTAINER me
CMD ["/app"]
`, Options{})
	names := []string{"HEALTHCHECK", "SHELL", "VOLUME", "STOPSIGNAL", "ONBUILD", "MAINTAINER"}
	if len(u.Warnings) != len(names) {
		t.Fatalf("warnings = %v", u.Warnings)
	}
	for i, name := range names {
		ig, ok := u.Final().Instructions[i].(*Ignored)
		if !ok || ig.Name != name || ig.Line != i+2 {
			t.Errorf("instruction %d = %#v, want ignored %s", i, u.Final().Instructions[i], name)
		}
		w := u.Warnings[i]
		if w.Line != i+2 || !strings.HasPrefix(w.Msg, name+" is ignored: ") {
			t.Errorf("warning %d = %v", i, w)
		}
	}
	if got := u.Warnings[2].String(); !strings.HasPrefix(got, "Unifile:4: VOLUME is ignored") {
		t.Errorf("warning string = %q", got)
	}
}

func TestRunKeptAndRejectedByEngine(t *testing.T) {
	u := parse(t, `FROM debian:12 AS build
COPY . /src
RUN --mount=type=cache,target=/root/.cache \
    make -C /src
FROM scratch
COPY --from=build /src/app /app
RUN ["/app", "--selftest"]
ENTRYPOINT ["/app"]
`, Options{Filename: "app/Unifile"})
	run := u.Stages[0].Instructions[1].(*Run)
	if run.Line != 3 || run.EndLine != 4 || !run.ShellForm || run.Flags[0] != "--mount=type=cache,target=/root/.cache" ||
		!strings.Contains(run.Args[0], "make -C /src") {
		t.Errorf("RUN = %+v", run)
	}
	if exec := u.Final().Instructions[1].(*Run); exec.ShellForm || !reflect.DeepEqual(exec.Args, []string{"/app", "--selftest"}) {
		t.Errorf("exec RUN = %+v", exec)
	}
	err := CheckEmbedded(u)
	want := "app/Unifile:3: RUN needs a container runtime; the embedded engine has none: send the build to a BuildKit daemon with `uni build --builder ADDR` (tcp://host:1234, unix:///run/buildkit/buildkitd.sock, docker-container://NAME), or build with `docker buildx build -f Unifile …`"
	if err == nil || err.Error() != want {
		t.Errorf("CheckEmbedded = %v, want %s", err, want)
	}
	if e, ok := err.(*Error); !ok || e.Line != 3 || e.File != "app/Unifile" {
		t.Errorf("CheckEmbedded error = %#v", err)
	}
	if err := CheckEmbedded(parse(t, "FROM scratch\nCMD [\"/a\"]\n", Options{})); err != nil {
		t.Errorf("CheckEmbedded on a clean file = %v", err)
	}
	add := parse(t, "FROM scratch\nADD https://x/y.tgz /\nCMD [\"/a\"]\n", Options{})
	if err := CheckEmbedded(add); err == nil || !strings.HasPrefix(err.Error(), "Unifile:2: ADD is not supported") {
		t.Errorf("CheckEmbedded on ADD = %v", err)
	}
}

func TestEscapeDirective(t *testing.T) {
	u := parse(t, "# escape=`\nFROM scratch\nENV A=1 `\n    B=2\nCMD [\"/a\"]\n", Options{})
	if want := []string{pathEnv, "A=1", "B=2"}; !reflect.DeepEqual(u.Final().Env, want) {
		t.Errorf("Env = %q, want %q", u.Final().Env, want)
	}
	if u.Final().Instructions[1].Pos().Line != 5 {
		t.Errorf("CMD line = %d, want 5", u.Final().Instructions[1].Pos().Line)
	}
}

// TestKernelReference: KERNEL keeps an image reference, tagged and pinned
// by digest, as written, for the kernel package's registry fetcher.
func TestKernelReference(t *testing.T) {
	for _, ref := range []string{
		"127.0.0.1:5000/uniforge/kernel:6.1.0-57-cloud-amd64",
		"registry.example/uniforge/kernel:6.1.0-57-cloud-amd64@sha256:" + strings.Repeat("ab", 32),
		"localhost/kernels/mine@sha256:" + strings.Repeat("0", 64),
	} {
		if got := final(t, "KERNEL "+ref).Settings.Kernel; got != ref {
			t.Errorf("KERNEL %s: kept %q", ref, got)
		}
	}
}
