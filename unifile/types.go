// Package unifile parses a Unifile: a Dockerfile whose last stage becomes a
// unikernel. The syntax (comments, continuations, JSON and shell forms,
// heredocs, directives) is BuildKit's own parser and variable expansion is
// BuildKit's shell lexer; this package turns that syntax tree into typed
// instructions and computes the image settings of each stage.
//
// Variables expand as in BuildKit's Dockerfile frontend, against each
// stage's environment, the base image's config included: the caller gives
// those configs through Options.BaseImage. Parse is otherwise a pure
// function: it reads nothing but its input and touches no files. Resolving
// what the instructions name (images, context paths, users, kernels) is
// the engine's job. unifile/bkcompat proves the image settings equal to
// BuildKit's for the same file.
package unifile

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// DefaultFilename names the input in errors when Options.Filename is empty.
const DefaultFilename = "Unifile"

// Defaults of the unikernel settings.
const (
	DefaultKernel      = "linux"
	DefaultMemoryBytes = 128 << 20
	DefaultCPUs        = 1
)

// Bounds of MEMORY, CPUS and EXPOSE. Memory and CPUs are config.json's
// bounds (spec), so that what a build may write a run accepts, no more.
const (
	MinMemoryBytes = spec.MinMemoryBytes
	MaxMemoryBytes = spec.MaxMemoryBytes
	MinCPUs        = spec.MinCPUs
	MaxCPUs        = spec.MaxCPUs
	// MaxExposedPorts bounds the ports of one EXPOSE range and of a stage:
	// Docker accepts EXPOSE 1-65535, but a unikernel forwarding that many
	// ports is never what was meant.
	MaxExposedPorts = 1024
)

// Bounds of a path a Unifile names (Linux's NAME_MAX and PATH_MAX).
const (
	MaxNameBytes = 255
	MaxPathBytes = 4096
)

// DefaultPath is the PATH BuildKit puts into every stage's environment that
// has none (its system.DefaultPathEnv for Linux).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Platforms assumed when Options names none: the unikernel's, and the build
// machine's.
const DefaultTargetPlatform = "linux/amd64"

// Options are the inputs of Parse besides the text itself.
type Options struct {
	// Filename names the input in errors and warnings ("Unifile" if empty).
	Filename string
	// BuildArgs override ARG defaults, as `docker build --build-arg`.
	BuildArgs map[string]string
	// BaseImage returns the config of the image a FROM names (ref after
	// ARG expansion; platform is FROM's --platform, expanded, or empty).
	// A stage starts from that config, as in BuildKit: its Env is visible to
	// ${VAR} in later instructions, its WORKDIR, USER, ENTRYPOINT, CMD,
	// ports and labels hold unless replaced. Nil means no base config (an
	// image base starts as empty as scratch), for pure tests; a nil config
	// with a nil error means the same for that image.
	BaseImage func(ref, platform string) (*ImageConfig, error)
	// TargetPlatform and BuildPlatform ("os/arch[/variant]") give the
	// automatic ARGs TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT and
	// BUILDPLATFORM, BUILDOS, BUILDARCH, BUILDVARIANT. Empty means
	// DefaultTargetPlatform and the running machine's.
	TargetPlatform string
	BuildPlatform  string
}

// ImageConfig is what a stage inherits from its base image's config, the
// fields of an OCI image config of the same names.
type ImageConfig struct {
	Env        []string
	WorkingDir string
	User       string
	Entrypoint []string
	Cmd        []string
	// ExposedPorts has the config's keys: "80/tcp", "53/udp", "8080".
	ExposedPorts map[string]struct{}
	Labels       map[string]string
}

// Error is a problem in a Unifile, located at a line.
type Error struct {
	File string
	Line int
	Msg  string
	// Err is the cause, if there is one; Msg already includes its text.
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Unwrap returns the cause, so that errors.Is and errors.As see it.
func (e *Error) Unwrap() error { return e.Err }

// Warning is something accepted but ignored, or probably a mistake.
type Warning struct {
	File string
	Line int
	Msg  string
}

// String is "file:line: msg", or "file: msg" for a warning about the whole
// file (Line 0), such as an unused build arg.
func (w Warning) String() string {
	if w.Line == 0 {
		return fmt.Sprintf("%s: %s", w.File, w.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg)
}

// Unifile is a parsed Unifile.
type Unifile struct {
	// Filename is Options.Filename (or DefaultFilename).
	Filename string
	// Args are the ARGs before the first FROM, with their resolved values;
	// FROM lines may use them, and stages may import them with a bare ARG.
	Args []*Arg
	// Stages in the order they appear; the last one becomes the unikernel.
	Stages []*Stage
	// Warnings lists what was accepted but has no effect on a unikernel.
	Warnings []Warning
}

// Final returns the last stage, the one that becomes the unikernel.
func (u *Unifile) Final() *Stage { return u.Stages[len(u.Stages)-1] }

// BaseKind says where a stage's root comes from.
type BaseKind int

const (
	// BaseImage is an OCI image, named by Base.Ref.
	BaseImage BaseKind = iota
	// BaseScratch is an empty root (FROM scratch).
	BaseScratch
	// BaseHost is the build machine's own root (FROM host).
	BaseHost
	// BaseStage is an earlier stage of the same Unifile, Base.Stage is its index.
	BaseStage
)

func (k BaseKind) String() string {
	switch k {
	case BaseImage:
		return "image"
	case BaseScratch:
		return "scratch"
	case BaseHost:
		return "host"
	case BaseStage:
		return "stage"
	}
	return fmt.Sprintf("BaseKind(%d)", int(k))
}

// Base is the FROM of a stage.
type Base struct {
	Kind BaseKind
	// Ref is the image reference (BaseImage) or the stage name (BaseStage),
	// after ARG expansion; empty for scratch and host.
	Ref string
	// Stage is the index of the base stage (BaseStage only).
	Stage int
}

// Stage is one FROM and the instructions up to the next FROM.
type Stage struct {
	// Name is the lower-cased AS name, empty if there is none.
	Name string
	// Index is the stage's position, counting from 0.
	Index int
	Base  Base
	// Platform is FROM's --platform flag, expanded, or empty.
	Platform string
	// Location is that of the FROM line.
	Location
	// Instructions in order, FROM excluded.
	Instructions []Instruction
	// Settings is the image config the stage ends with, including what it
	// inherits from an earlier stage it is built FROM. The unikernel keywords
	// (KERNEL, MEMORY, CPUS, INCLUDE) may only appear in the last stage.
	Settings
}

// Settings is the image configuration a stage computes: what BuildKit's
// image config for the stage would be (base image config included, when
// Options.BaseImage gives it), plus the unikernel keywords.
type Settings struct {
	Entrypoint []string
	Cmd        []string
	// Env is KEY=value in order of first definition, the base image's
	// first; a later ENV of the same key replaces the value in place. PATH
	// is always there (DefaultPath unless the base image or an ENV sets it).
	Env []string
	// WorkingDir is absolute, or empty if neither a WORKDIR nor the base
	// image set one. As in BuildKit, a relative WORKDIR is joined to the
	// previous one and cleaned; an absolute one is kept as written.
	WorkingDir string
	// User is as written (uid[:gid] or names for the engine to resolve).
	User         string
	ExposedPorts []spec.Port // sorted by protocol then port, no duplicates
	Labels       map[string]string
	Kernel       string // DefaultKernel unless KERNEL says otherwise
	MemoryBytes  int64
	CPUs         int
	Includes     []string // clean absolute paths, sorted, no duplicates
	// IncludeAt is where each path of Includes was first named.
	IncludeAt map[string]Location
}

// Argv is the command line the unikernel runs: ENTRYPOINT then CMD.
func (s *Settings) Argv() []string {
	argv := make([]string, 0, len(s.Entrypoint)+len(s.Cmd))
	argv = append(argv, s.Entrypoint...)
	return append(argv, s.Cmd...)
}

// Location is where an instruction stands: its first and last line (they
// differ after continuations and heredocs).
type Location struct {
	Line    int
	EndLine int
}

// Pos returns the location; it makes every instruction an Instruction.
func (l Location) Pos() Location { return l }

// Instruction is one typed instruction of a stage.
type Instruction interface {
	// Keyword is the upper-case instruction name, e.g. "COPY".
	Keyword() string
	Pos() Location
}

// ConfigFromV1 takes what a stage inherits from an image config as
// go-containerregistry reads it.
func ConfigFromV1(c v1.Config) *ImageConfig {
	return &ImageConfig{
		Env:          c.Env,
		WorkingDir:   c.WorkingDir,
		User:         c.User,
		Entrypoint:   c.Entrypoint,
		Cmd:          c.Cmd,
		ExposedPorts: c.ExposedPorts,
		Labels:       c.Labels,
	}
}
