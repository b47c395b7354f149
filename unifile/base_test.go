package unifile

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// nodeImage is a base image config like the official node images'.
var nodeImage = ImageConfig{
	Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "NODE_VERSION=20.11.0", "YARN_VERSION=1.22.19"},
	WorkingDir:   "/home/node",
	User:         "node",
	Entrypoint:   []string{"docker-entrypoint.sh"},
	Cmd:          []string{"node"},
	ExposedPorts: map[string]struct{}{"3000/tcp": {}, "5353": {}, "9/sctp": {}},
	Labels:       map[string]string{"org.opencontainers.image.source": "node"},
}

// withBase returns Options whose BaseImage knows node:20 and records the
// refs and platforms it was asked for.
func withBase(asked *[]string) Options {
	return Options{BaseImage: func(ref, platform string) (*ImageConfig, error) {
		if asked != nil {
			*asked = append(*asked, ref+"|"+platform)
		}
		if ref != "node:20" {
			return nil, errors.New("not found")
		}
		c := nodeImage
		return &c, nil
	}}
}

func TestBaseImageConfig(t *testing.T) {
	var asked []string
	u := parse(t, `FROM --platform=linux/amd64 node:20 AS one
FROM node:20
ENV APP=/srv/${NODE_VERSION} PATH=/app/bin:$PATH
WORKDIR app
EXPOSE 8080
LABEL tool=uni
`, withBase(&asked))
	s := u.Final().Settings
	want := Settings{
		Entrypoint:   []string{"docker-entrypoint.sh"},
		Cmd:          []string{"node"},
		Env:          []string{"PATH=/app/bin:/usr/local/bin:/usr/bin:/bin", "NODE_VERSION=20.11.0", "YARN_VERSION=1.22.19", "APP=/srv/20.11.0"},
		WorkingDir:   "/home/node/app",
		User:         "node",
		ExposedPorts: []spec.Port{{Port: 3000, Protocol: "tcp"}, {Port: 5353, Protocol: "tcp"}, {Port: 8080, Protocol: "tcp"}},
		Labels:       map[string]string{"org.opencontainers.image.source": "node", "tool": "uni"},
		Kernel:       DefaultKernel, MemoryBytes: DefaultMemoryBytes, CPUs: DefaultCPUs,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("settings\n got %+v\nwant %+v", s, want)
	}
	// Asked once per image and platform, with FROM's --platform.
	if want := []string{"node:20|linux/amd64", "node:20|"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("BaseImage asked for %q, want %q", asked, want)
	}
	// The base image's sctp port cannot be forwarded: a warning on the FROM line.
	if len(u.Warnings) != 2 || u.Warnings[0].Line != 1 || !strings.Contains(u.Warnings[0].Msg, `"9/sctp" is ignored`) {
		t.Errorf("warnings = %v", u.Warnings)
	}
	// The parse did not change the config it was given.
	if nodeImage.Env[0] != "PATH=/usr/local/bin:/usr/bin:/bin" || len(nodeImage.Labels) != 1 {
		t.Errorf("base config changed: %+v", nodeImage)
	}
}

func TestBaseImageEntrypointAndCmd(t *testing.T) {
	tests := []struct {
		body        string
		entry, cmd  []string
		description string
	}{
		{"", []string{"docker-entrypoint.sh"}, []string{"node"}, "both inherited"},
		{`CMD ["app.js"]`, []string{"docker-entrypoint.sh"}, []string{"app.js"}, "CMD keeps the base ENTRYPOINT"},
		{`ENTRYPOINT ["/usr/local/bin/node"]`, []string{"/usr/local/bin/node"}, nil, "ENTRYPOINT drops the base CMD"},
		{"CMD [\"a.js\"]\nENTRYPOINT [\"/n\"]", []string{"/n"}, []string{"a.js"}, "a CMD of the stage stays"},
	}
	for _, tt := range tests {
		s := parse(t, "FROM node:20\n"+tt.body+"\n", withBase(nil)).Final()
		if !reflect.DeepEqual(s.Entrypoint, tt.entry) || !reflect.DeepEqual(s.Cmd, tt.cmd) {
			t.Errorf("%s: entrypoint %q cmd %q, want %q %q", tt.description, s.Entrypoint, s.Cmd, tt.entry, tt.cmd)
		}
	}
}

func TestBaseImageErrors(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM scratch AS a\nCMD [\"/a\"]\nFROM nope:1\n"), withBase(nil))
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 || err.Error() != "Unifile:3: FROM nope:1: not found" || e.Unwrap() == nil {
		t.Errorf("error = %v", err)
	}
	// With a base config known, an image that brings nothing to run is an error.
	empty := Options{BaseImage: func(string, string) (*ImageConfig, error) { return nil, nil }}
	_, err = Parse(strings.NewReader("FROM busybox\nENV A=1\n"), empty)
	if err == nil || err.Error() != "Unifile:1: no ENTRYPOINT or CMD in the last stage or its base image: nothing to run" {
		t.Errorf("error = %v", err)
	}
	// A base image's working directory and program are paths like any other.
	bad := Options{BaseImage: func(string, string) (*ImageConfig, error) {
		return &ImageConfig{WorkingDir: "/a\x00b", Cmd: []string{"/x"}}, nil
	}}
	_, err = Parse(strings.NewReader("FROM bad\n"), bad)
	if err == nil || !strings.HasPrefix(err.Error(), `Unifile:1: FROM bad: the base image's WorkingDir "/a\x00b": a path cannot hold a control character`) {
		t.Errorf("error = %v", err)
	}
	bad = Options{BaseImage: func(string, string) (*ImageConfig, error) {
		return &ImageConfig{Entrypoint: []string{"/bin/a\nb"}}, nil
	}}
	_, err = Parse(strings.NewReader("FROM bad\nENV A=1\n"), bad)
	if err == nil || !strings.HasPrefix(err.Error(), `Unifile:1: the program to run "/bin/a\nb": a path cannot hold a control character`) {
		t.Errorf("error = %v", err)
	}
}

func TestErrorKeepsItsCause(t *testing.T) {
	// An expansion error of BuildKit's lexer stays reachable.
	_, err := Parse(strings.NewReader("FROM scratch\nENV A=${NOPE:?unset}\nCMD [\"/a\"]\n"), Options{})
	var e *Error
	if !errors.As(err, &e) || e.Err == nil || e.Line != 2 {
		t.Fatalf("error = %#v", err)
	}
	if !strings.HasSuffix(e.Err.Error(), "NOPE: unset") {
		t.Errorf("cause = %v, want the lexer's error", e.Err)
	}
	// The BaseImage function's own error is kept.
	sentinel := errors.New("registry down")
	_, err = Parse(strings.NewReader("FROM x:1\n"), Options{BaseImage: func(string, string) (*ImageConfig, error) { return nil, sentinel }})
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, sentinel) is false", err)
	}
	// An error with no cause has none.
	_, err = Parse(strings.NewReader("FROM scratch\nFOO\n"), Options{})
	if !errors.As(err, &e) || e.Unwrap() != nil {
		t.Errorf("error = %#v", err)
	}
}

func TestPlatformArgs(t *testing.T) {
	u := parse(t, `FROM --platform=$BUILDPLATFORM scratch AS build
ARG TARGETARCH
ARG BUILDOS
ENV T=$TARGETARCH B=$BUILDOS UNDECLARED=${TARGETOS:-none}
FROM scratch AS final
ARG TARGETPLATFORM
ARG TARGETSTAGE
ENV P=$TARGETPLATFORM S=$TARGETSTAGE
CMD ["/a"]
`, Options{TargetPlatform: "linux/arm64/v8", BuildPlatform: "linux/amd64"})
	if got := u.Stages[0].Platform; got != "linux/amd64" {
		t.Errorf("FROM --platform = %q", got)
	}
	if want := []string{pathEnv, "T=arm64", "B=linux", "UNDECLARED=none"}; !reflect.DeepEqual(u.Stages[0].Env, want) {
		t.Errorf("Env = %q, want %q", u.Stages[0].Env, want)
	}
	if want := []string{pathEnv, "P=linux/arm64/v8", "S=final"}; !reflect.DeepEqual(u.Final().Env, want) {
		t.Errorf("Env = %q, want %q", u.Final().Env, want)
	}
	// The default target is the unikernel's; a build arg overrides it and is used.
	u = parse(t, "FROM scratch\nARG TARGETPLATFORM\nENV P=$TARGETPLATFORM\nCMD [\"/a\"]\n", Options{})
	if want := []string{pathEnv, "P=" + DefaultTargetPlatform}; !reflect.DeepEqual(u.Final().Env, want) {
		t.Errorf("Env = %q, want %q", u.Final().Env, want)
	}
	u = parse(t, "FROM scratch\nARG TARGETARCH\nENV A=$TARGETARCH\nCMD [\"/a\"]\n", Options{BuildArgs: map[string]string{"TARGETARCH": "riscv64"}})
	if want := []string{pathEnv, "A=riscv64"}; !reflect.DeepEqual(u.Final().Env, want) || len(u.Warnings) != 0 {
		t.Errorf("Env = %q, want %q; warnings %v", u.Final().Env, want, u.Warnings)
	}
	if _, err := Parse(strings.NewReader("FROM scratch\nCMD [\"/a\"]\n"), Options{TargetPlatform: "amd64"}); err == nil {
		t.Error("a platform without an OS was accepted")
	}
}

func TestStageInheritsBuildEnvironment(t *testing.T) {
	u := parse(t, `FROM node:20 AS one
ARG ONE=1
ENV E=$ONE
FROM one
ENV SEEN=${ONE}-${NODE_VERSION}
`, withBase(nil))
	if want := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "NODE_VERSION=20.11.0", "YARN_VERSION=1.22.19", "E=1", "SEEN=1-20.11.0"}; !reflect.DeepEqual(u.Final().Env, want) {
		t.Errorf("Env = %q, want %q", u.Final().Env, want)
	}
}

func TestCopyFromIsNotExpanded(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM scratch AS a\nFROM scratch\nARG S=a\nCOPY --from=$S /x /x\nCMD [\"/a\"]\n"), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "Unifile:4: COPY --from=$S: variables are not expanded in --from, as in BuildKit") {
		t.Errorf("error = %v", err)
	}
}

func TestIncludeLocations(t *testing.T) {
	s := final(t, "INCLUDE /etc/ssl/certs /opt/a\nENV X=1\nINCLUDE /opt/b /etc/ssl/certs/ /opt/a/.")
	want := map[string]Location{
		"/etc/ssl/certs": {Line: 2, EndLine: 2},
		"/opt/a":         {Line: 2, EndLine: 2},
		"/opt/b":         {Line: 4, EndLine: 4},
	}
	if !reflect.DeepEqual(s.IncludeAt, want) {
		t.Errorf("IncludeAt = %v, want %v", s.IncludeAt, want)
	}
	for _, p := range s.Includes {
		if _, ok := s.IncludeAt[p]; !ok {
			t.Errorf("INCLUDE %s has no location", p)
		}
	}
}

func TestPathsAreChecked(t *testing.T) {
	long := strings.Repeat("n", MaxNameBytes+1)
	deep := strings.Repeat("/"+strings.Repeat("d", 200), 21) // 4221 bytes
	tests := []struct{ name, body, want string }{
		{"nul in COPY dest", "COPY a \"/app/x\x00y\"", `Unifile:2: COPY destination "/app/x\x00y": a path cannot hold a control character (byte 0x00 at 6)`},
		{"newline in COPY source", "COPY [\"a\\nb\", \"/app/\"]", `Unifile:2: COPY source "a\nb": a path cannot hold a control character (byte 0x0a at 1)`},
		{"escape in WORKDIR", "WORKDIR \"/a\x1b[2Jb\"", `Unifile:2: WORKDIR "/a\x1b[2Jb": a path cannot hold a control character (byte 0x1b at 2)`},
		{"DEL in INCLUDE", "INCLUDE [\"/etc/\\u007f\"]", `Unifile:2: INCLUDE "/etc/\x7f": a path cannot hold a control character (byte 0x7f at 5)`},
		{"control in ENTRYPOINT", "ENTRYPOINT [\"/bin/a\\u0001\"]", `Unifile:2: ENTRYPOINT "/bin/a\x01": a path cannot hold a control character (byte 0x01 at 6)`},
		{"long name", "COPY a /app/" + long, "Unifile:2: COPY destination: the name \"" + long[:40] + "\"… is 256 bytes long, more than the 255 allowed"},
		{"long path", "WORKDIR " + deep, "Unifile:2: WORKDIR \"" + deep[:40] + "\"…: the path is 4221 bytes long, more than the 4096 allowed"},
		{"long INCLUDE name", "INCLUDE /" + long, "Unifile:2: INCLUDE: the name \"" + long[:40] + "\"… is 256 bytes long, more than the 255 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader("FROM scratch\n"+tt.body+"\nCMD [\"/a\"]\n"), Options{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
	// The longest allowed name and path pass.
	ok := "/" + strings.Repeat("n", MaxNameBytes)
	if s := final(t, "WORKDIR "+ok); s.WorkingDir != ok {
		t.Errorf("WorkingDir = %q", s.WorkingDir)
	}
}

func TestLimitsSayWhatIsWrong(t *testing.T) {
	tests := []struct{ body, want string }{
		{"MEMORY -5", "Unifile:2: MEMORY -5 is out of range: a size cannot be negative; allowed is 32 MiB to 64 GiB"},
		{"MEMORY -128M", "Unifile:2: MEMORY -128M is out of range: a size cannot be negative; allowed is 32 MiB to 64 GiB"},
		{"MEMORY 0", "Unifile:2: MEMORY 0 is out of range: the size is zero; the least is 32 MiB"},
		{"MEMORY 1K", "Unifile:2: MEMORY 1K is out of range: the least is 32 MiB"},
		{"MEMORY 128X", `Unifile:2: MEMORY "128X": want a whole number with an optional unit, e.g. 128M, 1G, 512MiB`},
		{"CPUS -1", "Unifile:2: CPUS -1 is out of range: a count cannot be negative; allowed is 1 to 64"},
		{"CPUS 99999999999999999999", "Unifile:2: CPUS 99999999999999999999 is out of range: the most is 64"},
		{"CPUS two", `Unifile:2: CPUS "two": want a whole number from 1 to 64`},
		{"EXPOSE 1-65535", "Unifile:2: EXPOSE 1-65535: a range of 65535 ports is more than the 1024 a unikernel may forward; expose the ports the app listens on"},
		{"EXPOSE 1000-2024/udp", "Unifile:2: EXPOSE 1000-2024/udp: a range of 1025 ports is more than the 1024 a unikernel may forward; expose the ports the app listens on"},
		{"EXPOSE 1-1000\nEXPOSE 2001-2100", "Unifile:3: EXPOSE: the stage would expose 1100 ports, more than the 1024 a unikernel may forward; expose the ports the app listens on"},
	}
	for _, tt := range tests {
		_, err := Parse(strings.NewReader("FROM scratch\n"+tt.body+"\nCMD [\"/a\"]\n"), Options{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q:\n got %v\nwant %s", tt.body, err, tt.want)
		}
	}
	// The widest range allowed passes.
	if s := final(t, "EXPOSE 2000-3023"); len(s.ExposedPorts) != MaxExposedPorts {
		t.Errorf("%d ports", len(s.ExposedPorts))
	}
}

func TestStripUnikernelKeywords(t *testing.T) {
	src := "# escape=\\\nFROM scratch\r\nKERNEL linux\nMEMORY 256M\nCPUS 2\nINCLUDE /a \\\n  /b \\\n  # comment\n  /c\nENV A=1\nCMD [\"/a\"]"
	got, err := StripUnikernelKeywords([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := "# escape=\\\nFROM scratch\r\n\n\n\n\n\n\n\nENV A=1\nCMD [\"/a\"]"
	if string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// Nothing to strip: the same bytes.
	plain := []byte("FROM scratch\nCMD [\"/a\"]\n")
	if got, _ := StripUnikernelKeywords(plain); string(got) != string(plain) {
		t.Errorf("got %q", got)
	}
	if _, err := StripUnikernelKeywords([]byte("FROM scratch\nCOPY <<EOF /x\n")); err == nil {
		t.Error("an unterminated heredoc was accepted")
	}
}
