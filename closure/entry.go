package closure

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"strings"
)

// Program is the ELF program an entrypoint ends up running, as the
// runtimes see it.
type Program struct {
	Path    string // absolute, as found (links not resolved)
	Real    string // links resolved
	Class   elf.Class
	Machine elf.Machine
	IsGo    bool // built by the Go toolchain
	proc    *process
}

// maxScriptDepth bounds #! chains as the kernel does (it allows a few levels).
const maxScriptDepth = 4

// shebangLimit is how much of a #! line the kernel reads (BINPRM_BUF_SIZE).
const shebangLimit = 256

// program finds argv0 and follows #! lines to the ELF program that runs,
// loading the closure of each program on the way (/usr/bin/env too). It
// returns argv0's absolute path and the program.
func (r *resolver) program(argv0 string) (string, *Program, error) {
	exe := r.abs(argv0)
	if !strings.Contains(argv0, "/") {
		found, err := r.lookPath(argv0)
		if err != nil {
			return "", nil, fmt.Errorf("entrypoint %w", err)
		}
		exe = found
	}
	cur := exe
	for depth := 0; depth <= maxScriptDepth; depth++ {
		e, err := stat(r.fsys, cur)
		if err != nil {
			return "", nil, err
		}
		if e == nil {
			return "", nil, fmt.Errorf("%s: not found", cur)
		}
		if !e.IsRegular() {
			return "", nil, fmt.Errorf("%s: not a regular file", cur)
		}
		head, err := readHead(e)
		if err != nil {
			return "", nil, err
		}
		if bytes.HasPrefix(head, []byte(elf.ELFMAG)) {
			proc, err := r.loadProgram(cur)
			if err != nil {
				return "", nil, err
			}
			info := proc.main.info
			return exe, &Program{Path: cur, Real: e.Path, Class: info.Class, Machine: info.Machine, IsGo: info.IsGo, proc: proc}, nil
		}
		interp, arg, ok := parseShebang(head)
		if !ok {
			return "", nil, fmt.Errorf("%s: neither an ELF program nor a #! script", cur)
		}
		r.add(cur)
		script := cur
		cur = r.abs(interp)
		if path.Base(cur) != "env" || arg == "" {
			continue
		}
		// "#!/usr/bin/env prog": env runs first, then execs prog from PATH.
		if _, err := r.loadProgram(cur); err != nil {
			return "", nil, err
		}
		name := envProgram(arg)
		if name == "" {
			return "", nil, fmt.Errorf("%s: no program named on its #! line %q", script, "#!"+interp+" "+arg)
		}
		if strings.Contains(name, "/") {
			cur = r.abs(name)
			continue
		}
		if cur, err = r.lookPath(name); err != nil {
			return "", nil, fmt.Errorf("%w (named by the #! line of %s)", err, script)
		}
	}
	return "", nil, fmt.Errorf("%s: more than %d levels of #! interpreters", exe, maxScriptDepth)
}

// lookPath finds an executable file called name on the image's PATH.
func (r *resolver) lookPath(name string) (string, error) {
	pathVar, ok := r.o.getenv("PATH")
	if !ok {
		pathVar = DefaultPath
	}
	for _, dir := range strings.Split(pathVar, ":") {
		cand := r.abs(path.Join(dir, name)) // an empty element is the working directory
		if e, _ := stat(r.fsys, cand); e != nil && e.IsRegular() && e.Mode&0o111 != 0 {
			return cand, nil
		}
	}
	return "", fmt.Errorf("%q not found on PATH %s", name, pathVar)
}

// readHead returns the first bytes of a file: enough for ELF magic or a #! line.
func readHead(e interface {
	Open() (io.ReadCloser, error)
}) ([]byte, error) {
	rc, err := e.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, shebangLimit)
	n, err := io.ReadFull(rc, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}

// parseShebang splits a #! line as the kernel does: the interpreter, then
// everything after it (trimmed) as one optional argument.
func parseShebang(head []byte) (interp, arg string, ok bool) {
	if !bytes.HasPrefix(head, []byte("#!")) {
		return "", "", false
	}
	line := string(head[2:])
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = strings.Trim(line, " \t\r")
	interp, arg, _ = strings.Cut(line, " ")
	if i := strings.IndexByte(interp, '\t'); i >= 0 {
		interp, arg = interp[:i], interp[i+1:]+" "+arg
	}
	return interp, strings.Trim(arg, " \t"), interp != ""
}

// envProgram returns the program env(1) runs for the argument of a #! line:
// the first word that is neither an option nor a NAME=value assignment
// ("-S" splits the rest into words, as env -S does).
func envProgram(arg string) string {
	words := strings.Fields(arg)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case strings.HasPrefix(w, "-S") && len(w) > 2:
			return envProgram(w[2:] + " " + strings.Join(words[i+1:], " "))
		case strings.HasPrefix(w, "-"):
			continue
		case strings.Contains(w, "="):
			continue
		}
		return w
	}
	return ""
}
