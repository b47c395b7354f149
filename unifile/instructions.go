package unifile

import (
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// KeyValue is one pair of ENV or LABEL, after expansion.
type KeyValue struct {
	Key   string
	Value string
}

// ArgVar is one variable of an ARG instruction.
type ArgVar struct {
	Name string
	// Default is the default as written (unexpanded), nil if there is none.
	Default *string
	// Value is the resolved value: the build arg, else the expanded
	// default, else for a stage ARG the global ARG of that name.
	Value string
	// HasValue is false for an ARG with no default and nothing to take.
	HasValue bool
}

// Arg declares build arguments.
type Arg struct {
	Location
	Vars []ArgVar
}

// Env sets environment variables of the image.
type Env struct {
	Location
	Vars []KeyValue
}

// Label sets image labels.
type Label struct {
	Location
	Labels []KeyValue
}

// Workdir sets the working directory.
type Workdir struct {
	Location
	Path string // as written, expanded
	Dir  string // absolute, joined with the previous WORKDIR
}

// Expose declares ports the app listens on.
type Expose struct {
	Location
	Ports []spec.Port // in the order written, ranges expanded
}

// User sets the user the app runs as, uid[:gid] or names.
type User struct {
	Location
	User string
}

// Entrypoint sets the program, exec (JSON) form only.
type Entrypoint struct {
	Location
	Args []string
}

// Cmd sets the default arguments, exec (JSON) form only.
type Cmd struct {
	Location
	Args []string
}

// Kernel names the kernel bundle: a name, an OCI reference or a local path,
// kept verbatim for the kernel package to resolve.
type Kernel struct {
	Location
	Ref string
}

// Memory sets the guest RAM.
type Memory struct {
	Location
	Bytes int64
}

// CPUs sets the number of guest CPUs.
type CPUs struct {
	Location
	Count int
}

// Include keeps paths of the base root beyond the entrypoint's closure.
type Include struct {
	Location
	Paths []string // clean and absolute
}

// CopyFromKind says where COPY takes its sources.
type CopyFromKind int

const (
	// FromContext is the build context (no --from).
	FromContext CopyFromKind = iota
	// FromStage is the root of an earlier stage.
	FromStage
	// FromImage is an image, by reference.
	FromImage
)

// CopyFrom is the --from of a COPY.
type CopyFrom struct {
	Kind  CopyFromKind
	Stage int    // FromStage: the stage index
	Ref   string // FromStage: the name or index as written; FromImage: the reference
}

// InlineFile is a heredoc source of COPY: a file made from the text.
type InlineFile struct {
	Name    string // the heredoc's delimiter word, the file's name
	Content string // expanded unless the delimiter was quoted
}

// Copy copies files into the stage's root.
type Copy struct {
	Location
	// Sources are kept verbatim (after variable expansion): globs, relative
	// paths and trailing slashes are the engine's to resolve.
	Sources []string
	Inline  []InlineFile
	Dest    string
	// Workdir is the stage's WORKDIR at this COPY: a relative Dest is
	// relative to it ("/" if none was set).
	Workdir string
	From    CopyFrom
	// Chmod is the --chmod mode; nil keeps the sources' modes.
	Chmod *uint32
	// Chown is --chown as written (uid[:gid] or names), empty if absent.
	Chown string
	// Link is --link, which only changes how BuildKit caches layers.
	Link bool
}

// Heredoc is a here-document attached to RUN or ADD.
type Heredoc struct {
	Name    string
	Content string
	Expand  bool
}

// Run runs a command in the stage. The parser keeps it for the BuildKit
// frontend; the embedded engine rejects it (see CheckEmbedded).
type Run struct {
	Location
	// Args is the exec form, or a single string in shell form.
	Args      []string
	ShellForm bool
	Flags     []string // --mount, --network … as written
	Heredocs  []Heredoc
}

// Add is Docker's ADD (URLs, archives). Kept for the BuildKit frontend;
// the embedded engine rejects it (see CheckEmbedded).
type Add struct {
	Location
	Sources  []string
	Dest     string
	Flags    []string
	Heredocs []Heredoc
}

// Ignored is an instruction accepted for compatibility that has no effect
// on a unikernel (HEALTHCHECK, SHELL, VOLUME, STOPSIGNAL, ONBUILD,
// MAINTAINER). A warning says why.
type Ignored struct {
	Location
	Name     string // upper case
	Original string // the instruction as written, continuations joined
	Reason   string
}

// Keyword implementations, one per type.

func (*Arg) Keyword() string        { return "ARG" }
func (*Env) Keyword() string        { return "ENV" }
func (*Label) Keyword() string      { return "LABEL" }
func (*Workdir) Keyword() string    { return "WORKDIR" }
func (*Expose) Keyword() string     { return "EXPOSE" }
func (*User) Keyword() string       { return "USER" }
func (*Entrypoint) Keyword() string { return "ENTRYPOINT" }
func (*Cmd) Keyword() string        { return "CMD" }
func (*Kernel) Keyword() string     { return "KERNEL" }
func (*Memory) Keyword() string     { return "MEMORY" }
func (*CPUs) Keyword() string       { return "CPUS" }
func (*Include) Keyword() string    { return "INCLUDE" }
func (*Copy) Keyword() string       { return "COPY" }
func (*Run) Keyword() string        { return "RUN" }
func (*Add) Keyword() string        { return "ADD" }
func (i *Ignored) Keyword() string  { return i.Name }
