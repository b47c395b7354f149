package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", stderr)
	out := fs.String("o", "", "where to write the Unifile (default: Unifile beside PROGRAM; - for stdout)")
	force := fs.Bool("force", false, "overwrite an existing Unifile")
	var ports listFlag
	fs.Var(&ports, "p", "a port the program listens on, repeatable (default: guessed from the source)")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		return errUsage
	}
	var ps []int
	for _, p := range ports {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("-p %s: want a port number 1-65535", p)
		}
		ps = append(ps, n)
	}
	text, err := programUnifile(pos[0], ps)
	if err != nil {
		return err
	}
	dest := *out
	if dest == "" {
		dest = filepath.Join(filepath.Dir(pos[0]), "Unifile")
	}
	if dest == "-" {
		_, err := io.WriteString(stdout, text)
		return err
	}
	if _, err := os.Stat(dest); err == nil && !*force {
		return fmt.Errorf("%s exists: use --force to replace it, or -o to write elsewhere", dest)
	}
	if err := os.WriteFile(dest, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s\n", dest)
	return nil
}

// interpreters maps script extensions to the interpreter that runs them and
// how to ask that interpreter for its real executable (past version-manager
// shims, which are shell scripts).
var interpreters = map[string]struct{ name, selfPath string }{
	".js":  {"node", "console.log(process.execPath)"},
	".mjs": {"node", "console.log(process.execPath)"},
	".cjs": {"node", "console.log(process.execPath)"},
	".py":  {"python3", "import sys; print(sys.executable)"},
}

// programUnifile writes the Unifile that runs one program: a script under
// the interpreter on the host's PATH, or an ELF as itself, taking the
// interpreter and libraries from the host (FROM host), or nothing at all
// for a static binary (FROM scratch).
func programUnifile(program string, ports []int) (string, error) {
	src, err := os.ReadFile(program)
	if err != nil {
		return "", err
	}
	base := filepath.Base(program)
	from, entry := "host", []string{"/app/" + base}
	if f, err := elf.NewFile(bytes.NewReader(src)); err == nil {
		if !hasInterp(f) {
			from = "scratch"
		}
	} else {
		interp, err := scriptInterpreter(program, src)
		if err != nil {
			return "", err
		}
		entry = []string{interp, base}
	}
	if len(ports) == 0 {
		ports = guessPorts(src)
	}
	argv, _ := json.Marshal(entry)
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `uni init %s`: the Unifile `uni run %s` builds.\n", base, base)
	fmt.Fprintf(&b, "FROM %s\n", from)
	fmt.Fprintf(&b, "COPY %s /app/\n", base)
	b.WriteString("WORKDIR /app\n")
	for _, p := range ports {
		fmt.Fprintf(&b, "EXPOSE %d\n", p)
	}
	fmt.Fprintf(&b, "ENTRYPOINT %s\n", argv)
	return b.String(), nil
}

func hasInterp(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// scriptInterpreter finds the host's interpreter for a script, by its
// extension or its #! line, as an absolute path.
func scriptInterpreter(program string, src []byte) (string, error) {
	name, self := "", ""
	if in, ok := interpreters[strings.ToLower(filepath.Ext(program))]; ok {
		name, self = in.name, in.selfPath
	} else if bytes.HasPrefix(src, []byte("#!")) {
		line, _, _ := strings.Cut(string(src[2:]), "\n")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return "", fmt.Errorf("%s: empty #! line", program)
		}
		name = fields[0]
		if filepath.Base(name) == "env" && len(fields) > 1 {
			name = fields[1]
		}
	} else {
		return "", fmt.Errorf("%s: not an ELF program, and no known script type (.js, .py, or a #! line)", program)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: %s not found on PATH: %w", program, name, err)
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if isScript(p) && self != "" {
		// A version manager's shim: ask the interpreter where it really is.
		out, err := exec.Command(p, "-c", self).Output()
		if name == "node" {
			out, err = exec.Command(p, "-e", self).Output()
		}
		if err != nil {
			return "", fmt.Errorf("%s is a script (a version manager's shim?) and asking it for the real %s failed: %w", p, name, err)
		}
		p = strings.TrimSpace(string(out))
	}
	return p, nil
}

func isScript(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 2)
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == "#!"
}

// portPatterns find the port a script listens on, for the one-liner's
// EXPOSE: server.listen(8083 in node, port=8000 or ("", 8000) in Python.
var portPatterns = []*regexp.Regexp{
	regexp.MustCompile(`\.listen\(\s*(\d{2,5})`),
	regexp.MustCompile(`\bport\s*[=:]\s*(\d{2,5})\b`),
	regexp.MustCompile(`\(\s*["'][\w.:]*["']\s*,\s*(\d{2,5})\s*\)`),
}

func guessPorts(src []byte) []int {
	seen := map[int]bool{}
	var out []int
	for _, re := range portPatterns {
		for _, m := range re.FindAllSubmatch(src, -1) {
			n, err := strconv.Atoi(string(m[1]))
			if err == nil && n > 0 && n < 65536 && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}
