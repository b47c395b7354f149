package unifile

import (
	"reflect"
	"strings"
	"testing"
)

const scopedArgs = `ARG VER=1
ARG BASE=alpine:${VER}
FROM ${BASE} AS first
ENV BEFORE=${VER:-unset}
ARG VER
ENV AFTER=$VER
ARG LOCAL=a
ARG DERIVED=${LOCAL}${VER}
ENV DERIVED=$DERIVED
FROM scratch
ENV SEEN=${LOCAL:-none}/${VER:-none}/${BASE:-none}
CMD ["/app"]
`

func TestArgScoping(t *testing.T) {
	u := parse(t, scopedArgs, Options{})
	first, last := u.Stages[0], u.Stages[1]
	if first.Base.Ref != "alpine:1" {
		t.Errorf("FROM expanded to %q, want alpine:1", first.Base.Ref)
	}
	// ARGs are not ENV: only ENV reaches the image.
	if want := []string{pathEnv, "BEFORE=unset", "AFTER=1", "DERIVED=a1"}; !reflect.DeepEqual(first.Env, want) {
		t.Errorf("first stage Env = %q, want %q", first.Env, want)
	}
	// A stage sees no ARG of another stage, nor a global one it did not declare.
	if want := []string{pathEnv, "SEEN=none/none/none"}; !reflect.DeepEqual(last.Env, want) {
		t.Errorf("last stage Env = %q, want %q", last.Env, want)
	}
	def := "1"
	if want := (ArgVar{Name: "VER", Default: &def, Value: "1", HasValue: true}); !reflect.DeepEqual(u.Args[0].Vars[0], want) {
		t.Errorf("meta ARG = %+v, want %+v", u.Args[0].Vars[0], want)
	}
	imported := first.Instructions[1].(*Arg).Vars[0]
	if imported.Default != nil || imported.Value != "1" || !imported.HasValue {
		t.Errorf("imported ARG = %+v", imported)
	}
	if len(u.Warnings) != 0 {
		t.Errorf("warnings = %v", u.Warnings)
	}
}

func TestBuildArgOverride(t *testing.T) {
	u := parse(t, scopedArgs, Options{BuildArgs: map[string]string{"VER": "2", "LOCAL": "b", "UNUSED": "x", "ALSO": "y"}})
	first := u.Stages[0]
	if first.Base.Ref != "alpine:2" {
		t.Errorf("FROM expanded to %q, want alpine:2", first.Base.Ref)
	}
	if want := []string{pathEnv, "BEFORE=unset", "AFTER=2", "DERIVED=b2"}; !reflect.DeepEqual(first.Env, want) {
		t.Errorf("Env = %q, want %q", first.Env, want)
	}
	// Build args not declared by an ARG are reported, in sorted order.
	var got []string
	for _, w := range u.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"Unifile: build arg ALSO is not declared by any ARG and has no effect",
		"Unifile: build arg UNUSED is not declared by any ARG and has no effect",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings = %q, want %q", got, want)
	}
	// A build arg overrides even a default that refers to other variables.
	u = parse(t, "FROM scratch\nARG A=x\nARG B=${A}y\nENV B=$B\nCMD [\"/a\"]\n", Options{BuildArgs: map[string]string{"B": "z"}})
	if want := []string{pathEnv, "B=z"}; !reflect.DeepEqual(u.Final().Env, want) {
		t.Errorf("Env = %q, want %q", u.Final().Env, want)
	}
}

func TestArgWithoutValue(t *testing.T) {
	u := parse(t, "ARG IMG\nFROM ${IMG:-scratch}\nARG IMG\nENV I=${IMG-unset}\nCMD [\"/a\"]\n", Options{})
	if u.Final().Base.Kind != BaseScratch {
		t.Errorf("base = %+v", u.Final().Base)
	}
	if want := []string{pathEnv, "I=unset"}; !reflect.DeepEqual(u.Final().Env, want) {
		t.Errorf("Env = %q, want %q", u.Final().Env, want)
	}
	if v := u.Args[0].Vars[0]; v.HasValue || v.Default != nil {
		t.Errorf("ARG IMG = %+v", v)
	}
}

func TestEnvAndArgOrder(t *testing.T) {
	// ENV after ARG of the same name wins for later expansion.
	s := final(t, "ARG X=arg\nENV X=env\nENV Y=$X")
	if want := []string{pathEnv, "X=env", "Y=env"}; !reflect.DeepEqual(s.Env, want) {
		t.Errorf("Env = %q, want %q", s.Env, want)
	}
	// An instruction sees the variables as they were before it.
	s = final(t, "ENV A=1\nENV A=2 B=$A")
	if want := []string{pathEnv, "A=2", "B=1"}; !reflect.DeepEqual(s.Env, want) {
		t.Errorf("Env = %q, want %q", s.Env, want)
	}
}

func TestMultiStage(t *testing.T) {
	u := parse(t, `ARG GO=1.22
FROM golang:${GO} AS build
WORKDIR /src
COPY go.mod main.go ./
ENV CGO_ENABLED=0

FROM build AS test
COPY testdata/ testdata/

FROM scratch
KERNEL linux
COPY --from=build /src/app /app
COPY --from=test /src/testdata /data
COPY --from=0 /etc/ssl/certs /etc/ssl/certs
EXPOSE 8080
ENTRYPOINT ["/app"]
CMD ["serve"]
`, Options{})
	if len(u.Stages) != 3 {
		t.Fatalf("%d stages, want 3", len(u.Stages))
	}
	build, test, last := u.Stages[0], u.Stages[1], u.Stages[2]
	if build.Name != "build" || build.Base != (Base{Kind: BaseImage, Ref: "golang:1.22"}) || build.Line != 2 {
		t.Errorf("build stage = %+v", build)
	}
	if test.Base != (Base{Kind: BaseStage, Ref: "build", Stage: 0}) || test.Index != 1 {
		t.Errorf("test stage base = %+v", test.Base)
	}
	// A stage built on another inherits its WORKDIR and ENV.
	if test.WorkingDir != "/src" || !reflect.DeepEqual(test.Env, []string{pathEnv, "CGO_ENABLED=0"}) {
		t.Errorf("test stage settings = %+v", test.Settings)
	}
	if c := test.Instructions[0].(*Copy); c.Workdir != "/src" || c.Dest != "testdata/" {
		t.Errorf("test COPY = %+v", c)
	}
	if last != u.Final() || last.Index != 2 || last.Line != 10 {
		t.Errorf("Final = %+v", u.Final())
	}
	var from []CopyFrom
	for _, in := range last.Instructions {
		if c, ok := in.(*Copy); ok {
			from = append(from, c.From)
		}
	}
	want := []CopyFrom{{Kind: FromStage, Stage: 0, Ref: "build"}, {Kind: FromStage, Stage: 1, Ref: "test"}, {Kind: FromStage, Stage: 0, Ref: "0"}}
	if !reflect.DeepEqual(from, want) {
		t.Errorf("COPY --from = %+v, want %+v", from, want)
	}
	if !reflect.DeepEqual(last.Argv(), []string{"/app", "serve"}) {
		t.Errorf("Argv = %q", last.Argv())
	}
	// The instructions keep file order and lines, so the engine can walk them.
	var lines []int
	for _, in := range last.Instructions {
		lines = append(lines, in.Pos().Line)
	}
	if want := []int{11, 12, 13, 14, 15, 16, 17}; !reflect.DeepEqual(lines, want) {
		t.Errorf("lines = %v, want %v", lines, want)
	}
}

func TestSameInputSameResult(t *testing.T) {
	a := parse(t, scopedArgs, Options{BuildArgs: map[string]string{"Z": "1", "A": "2", "M": "3"}})
	b := parse(t, scopedArgs, Options{BuildArgs: map[string]string{"M": "3", "A": "2", "Z": "1"}})
	if !reflect.DeepEqual(a, b) {
		t.Error("two parses of the same input differ")
	}
	if !strings.Contains(a.Warnings[0].Msg, " A ") {
		t.Errorf("warnings not sorted: %v", a.Warnings)
	}
}
