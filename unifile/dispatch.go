package unifile

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// ignoredReason gives, for a Dockerfile instruction a unikernel accepts and
// ignores, the warning that says why.
func ignoredReason(keyword string) (string, bool) {
	switch keyword {
	case "HEALTHCHECK":
		return "HEALTHCHECK is ignored: a unikernel has no runtime to run checks in", true
	case "SHELL":
		return "SHELL is ignored: it only affects RUN and shell forms, and a unikernel has no shell", true
	case "VOLUME":
		return "VOLUME is ignored: the root is read-only and no volumes are mounted", true
	case "STOPSIGNAL":
		return "STOPSIGNAL is ignored: the init forwards the signals it gets and powers off when the app exits", true
	case "ONBUILD":
		return "ONBUILD is ignored: a unikernel is never the base of another build", true
	case "MAINTAINER":
		return "MAINTAINER is ignored: it is deprecated, use LABEL org.opencontainers.image.authors=…", true
	}
	return "", false
}

// isKeyword reports the instructions a Unifile knows, FROM included.
func isKeyword(keyword string) bool {
	if _, ok := ignoredReason(keyword); ok {
		return true
	}
	switch keyword {
	case "FROM", "ARG", "ENV", "LABEL", "WORKDIR", "EXPOSE", "USER", "ENTRYPOINT", "CMD",
		"KERNEL", "MEMORY", "CPUS", "INCLUDE", "COPY", "RUN", "ADD":
		return true
	}
	return false
}

// instruction turns one node of a stage into a typed instruction and
// applies it to the stage's settings.
func (p *parseState) instruction(keyword string, n *parser.Node, loc Location) (Instruction, error) {
	st := p.cur
	s := &st.stage.Settings
	switch keyword {
	case "ARG":
		return p.arg(n, loc, st.vars, p.meta)
	case "ENV":
		pairs, err := p.keyValues(keyword, n, loc)
		if err != nil {
			return nil, err
		}
		for _, kv := range pairs {
			st.vars.set(kv.Key, kv.Value)
			s.Env = addEnv(s.Env, kv.Key, kv.Value)
		}
		return &Env{Location: loc, Vars: pairs}, nil
	case "LABEL":
		pairs, err := p.keyValues(keyword, n, loc)
		if err != nil {
			return nil, err
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		for _, kv := range pairs {
			s.Labels[kv.Key] = kv.Value
		}
		return &Label{Location: loc, Labels: pairs}, nil
	case "WORKDIR":
		dir, err := p.oneWord(keyword, n, loc, nodeArgs(n))
		if err != nil {
			return nil, err
		}
		s.WorkingDir = normalizeWorkdir(s.WorkingDir, dir)
		if err := checkPath("WORKDIR", s.WorkingDir); err != nil {
			return nil, p.errorf(loc.Line, "%w", err)
		}
		return &Workdir{Location: loc, Path: dir, Dir: s.WorkingDir}, nil
	case "EXPOSE":
		return p.expose(n, loc)
	case "USER":
		user, err := p.oneWord(keyword, n, loc, nodeArgs(n))
		if err != nil {
			return nil, err
		}
		if _, err := ParseUserSpec(user); err != nil {
			return nil, p.errorf(loc.Line, "USER: %w", err)
		}
		s.User = user
		return &User{Location: loc, User: user}, nil
	case "ENTRYPOINT", "CMD":
		return p.execForm(keyword, n, loc)
	case "KERNEL", "MEMORY", "CPUS", "INCLUDE":
		return p.unikernelKeyword(keyword, n, loc)
	case "COPY":
		return p.copy(n, loc)
	case "RUN":
		// RUN's flags (--mount, --network …) are BuildKit's to check.
		return &Run{Location: loc, Args: nodeArgs(n), ShellForm: !n.Attributes["json"],
			Flags: slices.Clone(n.Flags), Heredocs: heredocs(n)}, nil
	case "ADD":
		args := nodeArgs(n)
		if len(args) < 2 {
			return nil, p.errorf(loc.Line, "ADD needs at least one source and a destination")
		}
		return &Add{Location: loc, Sources: args[:len(args)-1], Dest: args[len(args)-1],
			Flags: slices.Clone(n.Flags), Heredocs: heredocs(n)}, nil
	}
	if reason, ok := ignoredReason(keyword); ok {
		p.warn(loc.Line, "%s", reason)
		return &Ignored{Location: loc, Name: keyword, Original: strings.TrimSpace(n.Original), Reason: reason}, nil
	}
	return nil, p.errorf(loc.Line, "unknown instruction %s", keyword)
}

// addEnv sets k in a KEY=value list as BuildKit does: every entry of that
// key is replaced where it stands, else it is appended.
func addEnv(env []string, k, v string) []string {
	found := false
	for i, kv := range env {
		if key, _, _ := strings.Cut(kv, "="); key == k {
			env[i], found = k+"="+v, true
		}
	}
	if !found {
		env = append(env, k+"="+v)
	}
	return env
}

// WorkingDirOrRoot is the directory relative paths are taken from.
func (s *Settings) WorkingDirOrRoot() string {
	if s.WorkingDir == "" {
		return "/"
	}
	return s.WorkingDir
}

// keyValues reads the pairs of ENV or LABEL (KEY=value… or legacy KEY value),
// expanded with the variables as they were before the instruction.
func (p *parseState) keyValues(keyword string, n *parser.Node, loc Location) ([]KeyValue, error) {
	if _, err := p.flags(keyword, n, loc, nil); err != nil {
		return nil, err
	}
	// BuildKit's parser gives triples: key, value, and "=" or "".
	words := nodeArgs(n)
	if len(words) == 0 || len(words)%3 != 0 {
		return nil, p.errorf(loc.Line, "%s needs at least one KEY=value", keyword)
	}
	var pairs []KeyValue
	for i := 0; i < len(words); i += 3 {
		key, err := p.expand(keyword, loc, words[i], p.cur.vars)
		if err != nil {
			return nil, err
		}
		value, err := p.expand(keyword, loc, words[i+1], p.cur.vars)
		if err != nil {
			return nil, err
		}
		if key == "" || strings.ContainsAny(key, "=\x00") {
			return nil, p.errorf(loc.Line, "%s: %q is not a valid name", keyword, key)
		}
		pairs = append(pairs, KeyValue{Key: key, Value: value})
	}
	return pairs, nil
}

// oneWord expands an instruction that takes exactly one argument.
func (p *parseState) oneWord(keyword string, n *parser.Node, loc Location, words []string) (string, error) {
	if _, err := p.flags(keyword, n, loc, nil); err != nil {
		return "", err
	}
	if len(words) != 1 {
		return "", p.errorf(loc.Line, "%s needs exactly one argument%s", keyword, commentHint(words))
	}
	word, err := p.expand(keyword, loc, words[0], p.cur.vars)
	if err != nil {
		return "", err
	}
	if word == "" {
		return "", p.errorf(loc.Line, "%s: the argument is empty", keyword)
	}
	return word, nil
}

func (p *parseState) expose(n *parser.Node, loc Location) (*Expose, error) {
	if _, err := p.flags("EXPOSE", n, loc, nil); err != nil {
		return nil, err
	}
	words := nodeArgs(n)
	if len(words) == 0 {
		return nil, p.errorf(loc.Line, "EXPOSE needs at least one port, e.g. EXPOSE 8080")
	}
	var ports []spec.Port
	for _, word := range words {
		expanded, err := p.lex.ProcessWords(word, p.cur.vars)
		if err != nil {
			return nil, p.errorf(loc.Line, "EXPOSE: %w", err)
		}
		for _, w := range expanded {
			more, err := parsePorts(w)
			if err != nil {
				return nil, p.errorf(loc.Line, "%w", err)
			}
			ports = append(ports, more...)
		}
	}
	if err := p.addPorts(&p.cur.stage.Settings, ports, loc, "EXPOSE"); err != nil {
		return nil, err
	}
	return &Expose{Location: loc, Ports: ports}, nil
}

// addPorts adds ports to the settings' sorted set and checks its size.
func (p *parseState) addPorts(s *Settings, ports []spec.Port, loc Location, what string) error {
	s.ExposedPorts = append(s.ExposedPorts, ports...)
	slices.SortFunc(s.ExposedPorts, func(a, b spec.Port) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	s.ExposedPorts = slices.Compact(s.ExposedPorts)
	if n := len(s.ExposedPorts); n > MaxExposedPorts {
		return p.errorf(loc.Line, "%s: the stage would expose %d ports, more than the %d a unikernel may forward; expose the ports the app listens on", what, n, MaxExposedPorts)
	}
	return nil
}

// execForm handles ENTRYPOINT and CMD, which must be JSON: the shell form
// would need /bin/sh, which a unikernel does not have.
func (p *parseState) execForm(keyword string, n *parser.Node, loc Location) (Instruction, error) {
	if _, err := p.flags(keyword, n, loc, nil); err != nil {
		return nil, err
	}
	args := nodeArgs(n)
	if !n.Attributes["json"] {
		if len(args) == 0 {
			return nil, p.errorf(loc.Line, "%s needs a JSON array, e.g. %s [\"node\", \"hi.js\"]", keyword, keyword)
		}
		example, _ := json.Marshal(strings.Fields(args[0]))
		hint := strings.ReplaceAll(string(example), `","`, `", "`)
		return nil, p.errorf(loc.Line, "%s in shell form needs a shell, and a unikernel has none: write it as JSON, e.g. %s %s", keyword, keyword, hint)
	}
	s := &p.cur.stage.Settings
	args = slices.Clone(args)
	if keyword == "CMD" {
		s.Cmd = args
		p.cur.cmdSet = true
		c := &Cmd{Location: loc, Args: args}
		if len(s.Entrypoint) == 0 {
			p.cur.argvAt = c
		}
		return c, nil
	}
	if len(args) > 0 {
		if err := checkPath("ENTRYPOINT", args[0]); err != nil {
			return nil, p.errorf(loc.Line, "%w", err)
		}
	}
	s.Entrypoint = args
	// Docker: a new ENTRYPOINT drops the CMD it inherited, not one of its own stage.
	if !p.cur.cmdSet {
		s.Cmd = nil
	}
	e := &Entrypoint{Location: loc, Args: args}
	p.cur.argvAt = e
	return e, nil
}

// unikernelKeyword handles KERNEL, MEMORY, CPUS and INCLUDE. BuildKit's
// parser does not know them, so their arguments are taken from the line.
func (p *parseState) unikernelKeyword(keyword string, n *parser.Node, loc Location) (Instruction, error) {
	if len(n.Flags) > 0 {
		return nil, p.errorf(loc.Line, "%s takes no flags", keyword)
	}
	words, err := p.rawWords(keyword, n, loc)
	if err != nil {
		return nil, err
	}
	s := &p.cur.stage.Settings
	if keyword == "INCLUDE" {
		if len(words) == 0 {
			return nil, p.errorf(loc.Line, "INCLUDE needs at least one absolute path")
		}
		var paths []string
		for _, w := range words {
			if err := checkPath("INCLUDE", w); err != nil {
				return nil, p.errorf(loc.Line, "%w", err)
			}
			clean, err := cleanAbs(w, "INCLUDE")
			if err != nil {
				return nil, p.errorf(loc.Line, "%w", err)
			}
			paths = append(paths, clean)
		}
		if s.IncludeAt == nil {
			s.IncludeAt = map[string]Location{}
		}
		for _, clean := range paths {
			if _, seen := s.IncludeAt[clean]; !seen {
				s.IncludeAt[clean] = loc
			}
		}
		s.Includes = append(s.Includes, paths...)
		slices.Sort(s.Includes)
		s.Includes = slices.Compact(s.Includes)
		return &Include{Location: loc, Paths: paths}, nil
	}
	if len(words) != 1 || words[0] == "" {
		return nil, p.errorf(loc.Line, "%s needs exactly one argument%s", keyword, commentHint(words))
	}
	switch keyword {
	case "KERNEL":
		if err := checkPath("KERNEL", words[0]); err != nil {
			return nil, p.errorf(loc.Line, "%w", err)
		}
		s.Kernel = words[0]
		return &Kernel{Location: loc, Ref: words[0]}, nil
	case "MEMORY":
		bytes, err := parseMemory(words[0])
		if err != nil {
			return nil, p.errorf(loc.Line, "%w", err)
		}
		s.MemoryBytes = bytes
		return &Memory{Location: loc, Bytes: bytes}, nil
	default: // CPUS
		count, err := parseCPUs(words[0])
		if err != nil {
			return nil, p.errorf(loc.Line, "%w", err)
		}
		s.CPUs = count
		return &CPUs{Location: loc, Count: count}, nil
	}
}

// rawWords splits and expands the arguments of an instruction BuildKit's
// parser does not know: a JSON array, or words with shell quoting.
func (p *parseState) rawWords(keyword string, n *parser.Node, loc Location) ([]string, error) {
	line := strings.TrimSpace(n.Original)
	rest := ""
	if i := strings.IndexAny(line, " \t\v\f\r"); i >= 0 {
		rest = strings.TrimSpace(line[i:])
	}
	var list []string
	if strings.HasPrefix(rest, "[") && json.Unmarshal([]byte(rest), &list) == nil {
		for i, w := range list {
			expanded, err := p.expand(keyword, loc, w, p.cur.vars)
			if err != nil {
				return nil, err
			}
			list[i] = expanded
		}
		return list, nil
	}
	words, err := p.lex.ProcessWords(rest, p.cur.vars)
	if err != nil {
		return nil, p.errorf(loc.Line, "%s: %w", keyword, err)
	}
	return words, nil
}

func (p *parseState) copy(n *parser.Node, loc Location) (*Copy, error) {
	flags, err := p.flags("COPY", n, loc, map[string]bool{"from": false, "chmod": false, "chown": false, "link": true})
	if err != nil {
		return nil, err
	}
	args := nodeArgs(n)
	if len(args) < 2 {
		return nil, p.errorf(loc.Line, "COPY needs at least one source and a destination")
	}
	vars := p.cur.vars
	c := &Copy{Location: loc, Workdir: p.cur.stage.WorkingDirOrRoot(), Link: flags["link"] == "true"}
	if parser.MustParseHeredoc(args[len(args)-1]) != nil {
		return nil, p.errorf(loc.Line, "COPY: the destination cannot be a heredoc")
	}
	if c.Dest, err = p.expand("COPY", loc, args[len(args)-1], vars); err != nil {
		return nil, err
	}
	if c.Dest == "" {
		return nil, p.errorf(loc.Line, "COPY: the destination is empty")
	}
	if err := checkPath("COPY destination", c.Dest); err != nil {
		return nil, p.errorf(loc.Line, "%w", err)
	}
	bodies := map[string]parser.Heredoc{}
	for _, h := range n.Heredocs {
		bodies[h.Name] = h
	}
	for _, src := range args[:len(args)-1] {
		if h := parser.MustParseHeredoc(src); h != nil {
			file, err := p.inlineFile(loc, bodies[h.Name], vars)
			if err != nil {
				return nil, err
			}
			if err := checkPath("COPY <<", file.Name); err != nil {
				return nil, p.errorf(loc.Line, "%w", err)
			}
			c.Inline = append(c.Inline, file)
			continue
		}
		expanded, err := p.expand("COPY", loc, src, vars)
		if err != nil {
			return nil, err
		}
		if isURL(expanded) {
			return nil, p.errorf(loc.Line, "COPY %s: URLs are not supported; put the file in the build context", expanded)
		}
		if expanded == "" {
			return nil, p.errorf(loc.Line, "COPY: a source is empty")
		}
		if err := checkPath("COPY source", expanded); err != nil {
			return nil, p.errorf(loc.Line, "%w", err)
		}
		c.Sources = append(c.Sources, expanded)
	}
	if err := p.copyFlags(c, flags, loc); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *parseState) inlineFile(loc Location, h parser.Heredoc, vars *vars) (InlineFile, error) {
	content := h.Content
	if h.Chomp {
		content = parser.ChompHeredocContent(content)
	}
	if h.Expand {
		expanded, _, err := p.rawLex.ProcessWord(content, vars)
		if err != nil {
			return InlineFile{}, p.errorf(loc.Line, "COPY <<%s: %w", h.Name, err)
		}
		content = expanded
	}
	return InlineFile{Name: h.Name, Content: content}, nil
}

func (p *parseState) copyFlags(c *Copy, flags map[string]string, loc Location) error {
	vars := p.cur.vars
	if raw, ok := flags["chmod"]; ok {
		mode, err := p.expand("COPY", loc, raw, vars)
		if err != nil {
			return err
		}
		bits, err := parseChmod(mode)
		if err != nil {
			return p.errorf(loc.Line, "%w", err)
		}
		c.Chmod = &bits
	}
	if raw, ok := flags["chown"]; ok {
		owner, err := p.expand("COPY", loc, raw, vars)
		if err != nil {
			return err
		}
		if _, err := ParseUserSpec(owner); err != nil {
			return p.errorf(loc.Line, "COPY --chown: %w", err)
		}
		c.Chown = owner
	}
	from, ok := flags["from"]
	if !ok {
		return nil
	}
	// BuildKit does not expand --from, and refuses a value that would be.
	if literal, err := p.expand("COPY", loc, from, newVars()); err != nil || literal != from {
		return p.errorf(loc.Line, "COPY --from=%s: variables are not expanded in --from, as in BuildKit: name a stage FROM ${VAR} AS src and copy --from=src", from)
	}
	return p.copyFrom(c, from, loc)
}

// copyFrom resolves --from: an earlier stage by name or index, else an image.
func (p *parseState) copyFrom(c *Copy, from string, loc Location) error {
	cur := p.cur.stage
	lower := strings.ToLower(from)
	if lower == cur.Name && cur.Name != "" {
		return p.errorf(loc.Line, "COPY --from=%s: a stage cannot copy from itself", from)
	}
	if base := p.stageByName(lower); base != nil {
		c.From = CopyFrom{Kind: FromStage, Stage: base.stage.Index, Ref: from}
		return nil
	}
	if p.allNames[lower] {
		return p.errorf(loc.Line, "COPY --from=%s: that stage comes later; copy only from earlier stages", from)
	}
	if index, err := strconv.Atoi(from); err == nil {
		if index < 0 || index >= cur.Index {
			return p.errorf(loc.Line, "COPY --from=%d: there is no stage %d before this one (stage %d)", index, index, cur.Index)
		}
		c.From = CopyFrom{Kind: FromStage, Stage: index, Ref: from}
		return nil
	}
	if _, err := name.ParseReference(from); err != nil {
		return p.errorf(loc.Line, "COPY --from=%s: not an earlier stage or an image reference: %w", from, err)
	}
	c.From = CopyFrom{Kind: FromImage, Ref: from}
	return nil
}

// commentHint explains a common mistake: Dockerfile comments cannot
// follow an instruction on its line.
func commentHint(words []string) string {
	for _, w := range words {
		if strings.HasPrefix(w, "#") {
			return " (a # comment must stand on its own line)"
		}
	}
	return ""
}

// heredocs copies the here-documents of RUN or ADD, unexpanded.
func heredocs(n *parser.Node) []Heredoc {
	var out []Heredoc
	for _, h := range n.Heredocs {
		content := h.Content
		if h.Chomp {
			content = parser.ChompHeredocContent(content)
		}
		out = append(out, Heredoc{Name: h.Name, Content: content, Expand: h.Expand})
	}
	return out
}
