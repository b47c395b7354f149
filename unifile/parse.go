package unifile

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Parse reads a Unifile and returns its stages as typed instructions, with
// the image settings each stage computes. Variables expand as in BuildKit's
// Dockerfile frontend: each instruction against its stage's environment
// (the base image's Env included), ARGs scoped across FROM. Every error is
// an *Error naming the file and line.
func Parse(r io.Reader, opts Options) (*Unifile, error) {
	p := &parseState{
		file:     opts.Filename,
		opts:     opts,
		usedArgs: map[string]bool{},
		configs:  map[[2]string]*ImageConfig{},
	}
	if p.file == "" {
		p.file = DefaultFilename
	}
	p.u = &Unifile{Filename: p.file}
	res, err := parser.Parse(r)
	if err != nil {
		return nil, p.syntaxError(err)
	}
	p.lex = shell.NewLex(res.EscapeToken)
	// Heredoc bodies expand as BuildKit does: quotes are left alone.
	p.rawLex = shell.NewLex('\\')
	p.rawLex.SkipProcessQuotes = true
	var target string
	p.allNames, target = stageNames(res.AST.Children)
	if p.meta, err = p.automaticArgs(target); err != nil {
		return nil, err
	}
	for _, n := range res.AST.Children {
		if err := p.node(n); err != nil {
			return nil, err
		}
	}
	if err := p.finish(res.AST); err != nil {
		return nil, err
	}
	return p.u, nil
}

// parseState is what Parse carries from one instruction to the next.
type parseState struct {
	file     string
	opts     Options
	usedArgs map[string]bool
	lex      *shell.Lex
	rawLex   *shell.Lex
	u        *Unifile
	// meta is what FROM lines see: the automatic platform ARGs and the
	// ARGs before the first FROM (BuildKit's global args).
	meta     *vars
	allNames map[string]bool // every AS name, to tell a later stage from an image
	configs  map[[2]string]*ImageConfig
	stages   []*stageState
	cur      *stageState
}

// stageState is a stage being built.
type stageState struct {
	stage *Stage
	// vars is what expansion sees, BuildKit's build state environment: the
	// base image's Env, then ARG and ENV, the last definition winning.
	vars *vars
	// cmdSet is whether this stage has its own CMD, which ENTRYPOINT keeps.
	cmdSet bool
	// unikernelAt is the first KERNEL, MEMORY, CPUS or INCLUDE, if any.
	unikernelAt Instruction
	// argvAt is the ENTRYPOINT or CMD that named the program to run.
	argvAt Instruction
}

// errorf makes an *Error at line. A %w verb in format names the cause,
// which the *Error keeps.
func (p *parseState) errorf(line int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{File: p.file, Line: line, Msg: err.Error(), Err: errors.Unwrap(err)}
}

func (p *parseState) warn(line int, format string, args ...any) {
	p.u.Warnings = append(p.u.Warnings, Warning{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// syntaxError turns an error of BuildKit's parser into an *Error.
func (p *parseState) syntaxError(err error) error {
	line := 1
	cause := err
	var located *parser.LocationError
	if errors.As(err, &located) {
		if len(located.Locations) > 0 && len(located.Locations[0]) > 0 {
			line = max(located.Locations[0][0].Start.Line, 1)
		}
		if inner := located.Unwrap(); inner != nil {
			cause = inner
		}
	}
	msg := cause.Error()
	if msg == "file with no instructions" {
		msg = "no instructions: a Unifile needs at least FROM and ENTRYPOINT or CMD"
	}
	return &Error{File: p.file, Line: line, Msg: msg, Err: cause}
}

// node handles one instruction of the syntax tree.
func (p *parseState) node(n *parser.Node) error {
	keyword := strings.ToUpper(n.Value)
	loc := Location{Line: n.StartLine, EndLine: n.EndLine}
	if keyword == "FROM" {
		return p.from(n, loc)
	}
	if p.cur == nil {
		if keyword == "ARG" {
			arg, err := p.arg(n, loc, p.meta, nil)
			if err != nil {
				return err
			}
			p.u.Args = append(p.u.Args, arg)
			return nil
		}
		if !isKeyword(keyword) {
			return p.errorf(loc.Line, "unknown instruction %s", keyword)
		}
		return p.errorf(loc.Line, "%s before the first FROM: only ARG may come before FROM", keyword)
	}
	instr, err := p.instruction(keyword, n, loc)
	if err != nil {
		return err
	}
	switch instr.(type) {
	case *Kernel, *Memory, *CPUs, *Include:
		if p.cur.unikernelAt == nil {
			p.cur.unikernelAt = instr
		}
	}
	p.cur.stage.Instructions = append(p.cur.stage.Instructions, instr)
	return nil
}

var validStageName = regexp.MustCompile(`^[a-z][a-z0-9-_.]*$`)

// stageNames collects the AS names of all stages, before expansion, and
// the last stage's name (the build's target, for TARGETSTAGE).
func stageNames(nodes []*parser.Node) (map[string]bool, string) {
	names := map[string]bool{}
	target := ""
	for _, n := range nodes {
		if !strings.EqualFold(n.Value, "FROM") {
			continue
		}
		args := nodeArgs(n)
		target = ""
		if len(args) == 3 {
			target = strings.ToLower(args[2])
			names[target] = true
		}
	}
	return names, target
}

// automaticArgs are the ARGs BuildKit defines before the first line: the
// platforms and the target stage. FROM lines see them; a stage sees one
// after a bare ARG NAME, as any global ARG. A build arg overrides them.
func (p *parseState) automaticArgs(target string) (*vars, error) {
	targetPlatform, buildPlatform := p.opts.TargetPlatform, p.opts.BuildPlatform
	if targetPlatform == "" {
		targetPlatform = DefaultTargetPlatform
	}
	if buildPlatform == "" {
		buildPlatform = runtime.GOOS + "/" + runtime.GOARCH
	}
	tos, tarch, tvariant, err := splitPlatform(targetPlatform)
	if err != nil {
		return nil, &Error{File: p.file, Msg: fmt.Sprintf("target platform: %v", err), Err: err}
	}
	bos, barch, bvariant, err := splitPlatform(buildPlatform)
	if err != nil {
		return nil, &Error{File: p.file, Msg: fmt.Sprintf("build platform: %v", err), Err: err}
	}
	if target == "" {
		target = "default"
	}
	v := newVars()
	for _, kv := range [...][2]string{
		{"BUILDPLATFORM", buildPlatform},
		{"BUILDOS", bos},
		{"BUILDOSVERSION", ""},
		{"BUILDARCH", barch},
		{"BUILDVARIANT", bvariant},
		{"TARGETPLATFORM", targetPlatform},
		{"TARGETOS", tos},
		{"TARGETOSVERSION", ""},
		{"TARGETARCH", tarch},
		{"TARGETVARIANT", tvariant},
		{"TARGETSTAGE", target},
	} {
		value := kv[1]
		if given, ok := p.opts.BuildArgs[kv[0]]; ok {
			value = given
			p.usedArgs[kv[0]] = true
		}
		v.set(kv[0], value)
	}
	return v, nil
}

// splitPlatform splits "os/arch[/variant]".
func splitPlatform(s string) (os, arch, variant string, err error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", fmt.Errorf("%q: want os/arch[/variant], e.g. linux/amd64", s)
	}
	if len(parts) == 3 {
		variant = parts[2]
	}
	return parts[0], parts[1], variant, nil
}

func (p *parseState) from(n *parser.Node, loc Location) error {
	flags, err := p.flags("FROM", n, loc, map[string]bool{"platform": false})
	if err != nil {
		return err
	}
	args := nodeArgs(n)
	if len(args) != 1 && (len(args) != 3 || !strings.EqualFold(args[1], "AS")) {
		return p.errorf(loc.Line, "FROM needs an image, scratch or host, and optionally AS name%s", commentHint(args))
	}
	// FROM sees only the global ARGs, as in BuildKit.
	ref, err := p.expand("FROM", loc, args[0], p.meta)
	if err != nil {
		return err
	}
	if ref == "" {
		return p.errorf(loc.Line, "FROM %s: the base name is empty", args[0])
	}
	platform, err := p.expand("FROM", loc, flags["platform"], p.meta)
	if err != nil {
		return err
	}
	stage := &Stage{Index: len(p.stages), Location: loc, Platform: platform}
	if len(args) == 3 {
		stage.Name = strings.ToLower(args[2])
		if !validStageName.MatchString(stage.Name) || stage.Name == "scratch" || stage.Name == "host" {
			return p.errorf(loc.Line, "FROM … AS %s: a stage name starts with a letter and has only letters, digits, '-', '_' and '.', and is not scratch or host", args[2])
		}
		if p.stageByName(stage.Name) != nil {
			return p.errorf(loc.Line, "FROM … AS %s: a stage of that name already exists", stage.Name)
		}
	}
	st := &stageState{stage: stage}
	switch base := p.stageByName(strings.ToLower(ref)); {
	case ref == "scratch" || ref == "host":
		stage.Base = Base{Kind: BaseScratch}
		if ref == "host" {
			stage.Base = Base{Kind: BaseHost}
		}
		if err := p.startFromConfig(st, nil, loc); err != nil {
			return err
		}
	case base != nil:
		stage.Base = Base{Kind: BaseStage, Ref: base.stage.Name, Stage: base.stage.Index}
		// A stage built on another inherits its config and its build
		// environment (ARGs included), as in BuildKit.
		stage.Settings = base.stage.Settings.clone()
		st.vars = base.vars.clone()
		st.argvAt = base.argvAt
	case p.allNames[strings.ToLower(ref)]:
		return p.errorf(loc.Line, "FROM %s: that stage comes later; a stage can only be built on an earlier one", ref)
	default:
		if _, err := name.ParseReference(ref); err != nil {
			return p.errorf(loc.Line, "FROM %q: not an image reference, an earlier stage, scratch or host: %w", ref, err)
		}
		stage.Base = Base{Kind: BaseImage, Ref: ref}
		cfg, err := p.baseConfig(ref, platform)
		if err != nil {
			return p.errorf(loc.Line, "FROM %s: %w", ref, err)
		}
		if err := p.startFromConfig(st, cfg, loc); err != nil {
			return err
		}
	}
	p.stages = append(p.stages, st)
	p.u.Stages = append(p.u.Stages, stage)
	p.cur = st
	return nil
}

// baseConfig asks Options.BaseImage for an image's config, once per image.
func (p *parseState) baseConfig(ref, platform string) (*ImageConfig, error) {
	if p.opts.BaseImage == nil {
		return nil, nil
	}
	key := [2]string{ref, platform}
	if cfg, ok := p.configs[key]; ok {
		return cfg, nil
	}
	cfg, err := p.opts.BaseImage(ref, platform)
	if err != nil {
		return nil, err
	}
	p.configs[key] = cfg
	return cfg, nil
}

// startFromConfig starts a stage from a base image's config (nil: an empty
// one, as scratch), the way BuildKit does: the config's Env (with PATH
// added if it has none) is the build environment, and every field holds
// until an instruction replaces it.
func (p *parseState) startFromConfig(st *stageState, cfg *ImageConfig, loc Location) error {
	s := Settings{Kernel: DefaultKernel, MemoryBytes: DefaultMemoryBytes, CPUs: DefaultCPUs}
	if cfg == nil {
		cfg = &ImageConfig{}
	}
	s.Env = slices.Clone(cfg.Env)
	st.vars = newVars()
	for _, kv := range s.Env {
		key, value, _ := strings.Cut(kv, "=")
		st.vars.set(key, value)
	}
	if _, ok := st.vars.Get("PATH"); !ok {
		s.Env = append(s.Env, "PATH="+DefaultPath)
		st.vars.set("PATH", DefaultPath)
	}
	if cfg.WorkingDir != "" {
		if err := checkPath("the base image's WorkingDir", cfg.WorkingDir); err != nil {
			return p.errorf(loc.Line, "FROM %s: %w", st.stage.Base.Ref, err)
		}
		// BuildKit applies the config's WorkingDir as a WORKDIR relative
		// to itself: "rel" becomes "/rel/rel". An absolute one (the usual
		// case) stays as it is.
		s.WorkingDir = normalizeWorkdir(cfg.WorkingDir, cfg.WorkingDir)
	}
	s.User = cfg.User
	s.Entrypoint = slices.Clone(cfg.Entrypoint)
	s.Cmd = slices.Clone(cfg.Cmd)
	s.Labels = maps.Clone(cfg.Labels)
	keys := slices.Sorted(maps.Keys(cfg.ExposedPorts))
	for _, key := range keys {
		port, err := parseConfigPort(key)
		if err != nil {
			p.warn(loc.Line, "FROM %s: the image's exposed port %q is ignored: %v", st.stage.Base.Ref, key, err)
			continue
		}
		s.ExposedPorts = append(s.ExposedPorts, port)
	}
	if err := p.addPorts(&s, nil, loc, "FROM "+st.stage.Base.Ref); err != nil {
		return err
	}
	st.stage.Settings = s
	return nil
}

// normalizeWorkdir is BuildKit's for Linux: a relative path is joined to
// the current directory (or /) and cleaned; an absolute one stays as is.
func normalizeWorkdir(current, wd string) string {
	if strings.HasPrefix(wd, "/") {
		return wd
	}
	return path.Join("/", current, wd)
}

func (p *parseState) stageByName(name string) *stageState {
	for _, st := range p.stages {
		if st.stage.Name != "" && st.stage.Name == name {
			return st
		}
	}
	return nil
}

func (s Settings) clone() Settings {
	c := s
	c.Entrypoint = slices.Clone(s.Entrypoint)
	c.Cmd = slices.Clone(s.Cmd)
	c.Env = slices.Clone(s.Env)
	c.ExposedPorts = slices.Clone(s.ExposedPorts)
	c.Labels = maps.Clone(s.Labels)
	c.Includes = slices.Clone(s.Includes)
	c.IncludeAt = maps.Clone(s.IncludeAt)
	return c
}

// nonEnvArgs are ARGs BuildKit does not put into a stage's environment.
var nonEnvArgs = map[string]bool{"BUILDKIT_SBOM_SCAN_CONTEXT": true, "BUILDKIT_SBOM_SCAN_STAGE": true}

// arg handles ARG, before the first FROM (scope is meta, global nil) or in
// a stage (scope is the stage's variables, global the meta ARGs), as
// BuildKit does: a build arg wins, else the default expanded, else for a
// stage ARG the global ARG of that name.
func (p *parseState) arg(n *parser.Node, loc Location, scope, global *vars) (*Arg, error) {
	if _, err := p.flags("ARG", n, loc, nil); err != nil {
		return nil, err
	}
	words := nodeArgs(n)
	if len(words) == 0 {
		return nil, p.errorf(loc.Line, "ARG needs a name, e.g. ARG VERSION=1.0")
	}
	arg := &Arg{Location: loc}
	for _, word := range words {
		key, def, hasDefault := strings.Cut(word, "=")
		if key == "" {
			return nil, p.errorf(loc.Line, "ARG %q: the name is empty", word)
		}
		v := ArgVar{Name: key}
		if hasDefault {
			v.Default = &def
		}
		if value, ok := p.opts.BuildArgs[key]; ok {
			p.usedArgs[key] = true
			v.Value, v.HasValue = value, true
		} else if hasDefault {
			expanded, err := p.expand("ARG", loc, def, scope)
			if err != nil {
				return nil, err
			}
			v.Value, v.HasValue = expanded, true
		} else if global != nil {
			v.Value, v.HasValue = global.Get(key)
		}
		if v.HasValue && (global == nil || !nonEnvArgs[key]) {
			scope.set(key, v.Value)
		}
		arg.Vars = append(arg.Vars, v)
	}
	return arg, nil
}

// finish checks what needs the whole file.
func (p *parseState) finish(root *parser.Node) error {
	if len(p.stages) == 0 {
		return p.errorf(root.EndLine, "no FROM: a Unifile needs at least one stage")
	}
	last := len(p.stages) - 1
	for _, st := range p.stages[:last] {
		if at := st.unikernelAt; at != nil {
			return p.errorf(at.Pos().Line, "%s is only allowed in the last stage, the one that becomes the unikernel", at.Keyword())
		}
	}
	final := p.u.Final()
	argv := final.Argv()
	if len(argv) == 0 {
		switch {
		case p.u.baseKind(final) != BaseImage:
			return p.errorf(final.Line, "no ENTRYPOINT or CMD in the last stage: nothing to run")
		case p.opts.BaseImage != nil:
			return p.errorf(final.Line, "no ENTRYPOINT or CMD in the last stage or its base image: nothing to run")
		}
		// Without Options.BaseImage, the image may still bring one.
	}
	if len(argv) > 0 {
		line := final.Line
		if at := p.stages[len(p.stages)-1].argvAt; at != nil {
			line = at.Pos().Line
		}
		if argv[0] == "" {
			return p.errorf(line, "the program to run (the first word of ENTRYPOINT, else CMD) is empty")
		}
		if err := checkPath("the program to run", argv[0]); err != nil {
			return p.errorf(line, "%w", err)
		}
	}
	var unused []string
	for key := range p.opts.BuildArgs {
		if !p.usedArgs[key] {
			unused = append(unused, key)
		}
	}
	slices.Sort(unused)
	for _, key := range unused {
		p.warn(0, "build arg %s is not declared by any ARG and has no effect", key)
	}
	return nil
}

// nodeArgs lists the words BuildKit's parser split an instruction into.
func nodeArgs(n *parser.Node) []string {
	var args []string
	for next := n.Next; next != nil; next = next.Next {
		args = append(args, next.Value)
	}
	return args
}

// expand substitutes variables in one word, quotes removed.
func (p *parseState) expand(keyword string, loc Location, word string, env shell.EnvGetter) (string, error) {
	out, _, err := p.lex.ProcessWord(word, env)
	if err != nil {
		return "", p.errorf(loc.Line, "%s: %w", keyword, err)
	}
	return out, nil
}

// flags parses an instruction's --flags against the allowed names (true:
// a boolean flag). It returns name → value ("true" for a bare boolean).
func (p *parseState) flags(keyword string, n *parser.Node, loc Location, allowed map[string]bool) (map[string]string, error) {
	values := map[string]string{}
	for _, flag := range n.Flags {
		key, value, hasValue := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		isBool, ok := allowed[key]
		if !ok {
			return nil, p.errorf(loc.Line, "%s: unknown flag --%s", keyword, key)
		}
		if _, dup := values[key]; dup {
			return nil, p.errorf(loc.Line, "%s: flag --%s given twice", keyword, key)
		}
		switch {
		case isBool && !hasValue:
			value = "true"
		case isBool && value != "true" && value != "false":
			return nil, p.errorf(loc.Line, "%s: flag --%s is true or false, not %q", keyword, key, value)
		case !isBool && !hasValue:
			return nil, p.errorf(loc.Line, "%s: flag --%s needs a value (--%s=…)", keyword, key, key)
		}
		values[key] = value
	}
	return values, nil
}

// baseKind follows FROM <stage> links down to where st's root comes from.
func (u *Unifile) baseKind(st *Stage) BaseKind {
	for st.Base.Kind == BaseStage && st.Base.Stage < st.Index {
		st = u.Stages[st.Base.Stage]
	}
	return st.Base.Kind
}
