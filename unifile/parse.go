package unifile

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Parse reads a Unifile and returns its stages as typed instructions, with
// the image settings each stage computes. Every error is an *Error naming
// the file and line.
func Parse(r io.Reader, opts Options) (*Unifile, error) {
	p := &parseState{
		file:      opts.Filename,
		buildArgs: opts.BuildArgs,
		usedArgs:  map[string]bool{},
		meta:      newVars(),
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
	p.allNames = stageNames(res.AST.Children)
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
	file      string
	buildArgs map[string]string
	usedArgs  map[string]bool
	lex       *shell.Lex
	rawLex    *shell.Lex
	u         *Unifile
	meta      *vars           // ARGs before the first FROM
	allNames  map[string]bool // every AS name, to tell a later stage from an image
	stages    []*stageState
	cur       *stageState
}

// stageState is a stage being built.
type stageState struct {
	stage *Stage
	// vars is what expansion sees: ARG and ENV, last definition winning.
	vars *vars
	// env is the image's environment: ENV only.
	env *vars
	// cmdSet is whether this stage has its own CMD, which ENTRYPOINT keeps.
	cmdSet bool
	// unikernelAt is the first KERNEL, MEMORY, CPUS or INCLUDE, if any.
	unikernelAt Instruction
}

func (p *parseState) errorf(line int, format string, args ...any) error {
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parseState) warn(line int, format string, args ...any) {
	p.u.Warnings = append(p.u.Warnings, Warning{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// syntaxError turns an error of BuildKit's parser into an *Error.
func (p *parseState) syntaxError(err error) error {
	line := 1
	var located *parser.LocationError
	if errors.As(err, &located) {
		if len(located.Locations) > 0 && len(located.Locations[0]) > 0 {
			line = max(located.Locations[0][0].Start.Line, 1)
		}
		if inner := located.Unwrap(); inner != nil {
			err = inner
		}
	}
	msg := err.Error()
	if msg == "file with no instructions" {
		msg = "no instructions: a Unifile needs at least FROM and ENTRYPOINT or CMD"
	}
	return &Error{File: p.file, Line: line, Msg: msg}
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

// stageNames collects the AS names of all stages, before expansion.
func stageNames(nodes []*parser.Node) map[string]bool {
	names := map[string]bool{}
	for _, n := range nodes {
		args := nodeArgs(n)
		if strings.EqualFold(n.Value, "FROM") && len(args) == 3 {
			names[strings.ToLower(args[2])] = true
		}
	}
	return names
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
	// FROM sees only the ARGs declared before the first FROM, as in Docker.
	ref, err := p.expand("FROM", loc, args[0], p.meta)
	if err != nil {
		return err
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
	p.closeStage()
	st := &stageState{stage: stage, vars: newVars(), env: newVars()}
	stage.Settings = Settings{Kernel: DefaultKernel, MemoryBytes: DefaultMemoryBytes, CPUs: DefaultCPUs}
	switch base := p.stageByName(strings.ToLower(ref)); {
	case ref == "scratch":
		stage.Base = Base{Kind: BaseScratch}
	case ref == "host":
		stage.Base = Base{Kind: BaseHost}
	case base != nil:
		stage.Base = Base{Kind: BaseStage, Ref: base.stage.Name, Stage: base.stage.Index}
		// A stage built on another inherits its config and variables.
		stage.Settings = base.stage.Settings.clone()
		st.vars = base.vars.clone()
		st.env = varsFromList(stage.Env)
	case p.allNames[strings.ToLower(ref)]:
		return p.errorf(loc.Line, "FROM %s: that stage comes later; a stage can only be built on an earlier one", ref)
	default:
		if _, err := name.ParseReference(ref); err != nil {
			return p.errorf(loc.Line, "FROM %q: not an image reference, an earlier stage, scratch or host: %v", ref, err)
		}
		stage.Base = Base{Kind: BaseImage, Ref: ref}
	}
	p.stages = append(p.stages, st)
	p.u.Stages = append(p.u.Stages, stage)
	p.cur = st
	return nil
}

func (p *parseState) stageByName(name string) *stageState {
	for _, st := range p.stages {
		if st.stage.Name != "" && st.stage.Name == name {
			return st
		}
	}
	return nil
}

// closeStage writes the current stage's environment into its settings.
func (p *parseState) closeStage() {
	if p.cur != nil {
		p.cur.stage.Env = p.cur.env.list()
	}
}

func (s Settings) clone() Settings {
	c := s
	c.Entrypoint = slices.Clone(s.Entrypoint)
	c.Cmd = slices.Clone(s.Cmd)
	c.Env = slices.Clone(s.Env)
	c.ExposedPorts = slices.Clone(s.ExposedPorts)
	c.Labels = maps.Clone(s.Labels)
	c.Includes = slices.Clone(s.Includes)
	return c
}

// arg handles ARG, before the first FROM (scope is meta, global nil) or in
// a stage (scope is the stage's variables, global the meta ARGs).
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
		if value, ok := p.buildArgs[key]; ok {
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
		if v.HasValue {
			scope.set(key, v.Value)
		}
		arg.Vars = append(arg.Vars, v)
	}
	return arg, nil
}

// finish checks what needs the whole file.
func (p *parseState) finish(root *parser.Node) error {
	p.closeStage()
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
	// A base image may bring its own ENTRYPOINT or CMD, which only the
	// engine sees; without one at the bottom of the stage chain, nothing runs.
	if len(final.Argv()) == 0 && p.u.baseKind(final) != BaseImage {
		return p.errorf(final.Line, "no ENTRYPOINT or CMD in the last stage: nothing to run")
	}
	if argv := final.Argv(); len(argv) > 0 && argv[0] == "" {
		return p.errorf(final.Line, "the program to run (the first word of ENTRYPOINT, else CMD) is empty")
	}
	var unused []string
	for key := range p.buildArgs {
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
		return "", p.errorf(loc.Line, "%s: %v", keyword, err)
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
