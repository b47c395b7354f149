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
	"slices"
	"strconv"
	"strings"
)

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

// portPatterns find the ports a script listens on, for the one-liner's
// EXPOSE. Each has one group, the port: a listen call (server.listen(8083),
// a port variable or keyword set to a number (port=8000, PORT = 8000,
// SERVER_PORT: 8000, httpPort = 8000, "port": 8000, port: int = 8000), a
// default for a PORT variable from the environment (os.environ.get("PORT",
// 8000), process.env.PORT || 3000), and a Python address tuple ("", 8000).
// "support = 10" is no port.
var portPatterns = []*regexp.Regexp{
	regexp.MustCompile(`\.listen\(\s*(\d{2,5})\b`),
	regexp.MustCompile(`\b(?:[A-Za-z0-9]+_(?:port|Port|PORT)|[a-z][a-zA-Z0-9]*Port|port|Port|PORT)\b["']?(?:\s*:\s*int\b)?\s*[=:]\s*(\d{2,5})\b`),
	regexp.MustCompile(`["'](?:[A-Za-z0-9]+_)?PORT["']\s*,\s*(?:default\s*=\s*)?["']?(\d{2,5})\b`),
	regexp.MustCompile(`\.(?:[A-Za-z0-9]+_)?PORT\s*(?:\|\||\?\?|\bor\b)\s*["']?(\d{2,5})\b`),
	regexp.MustCompile(`\(\s*["'][\w.:]*["']\s*,\s*(\d{2,5})\s*\)`),
}

// guessPorts returns the ports portPatterns find in src, in the order they
// appear, each once.
func guessPorts(src []byte) []int {
	type found struct{ at, port int }
	var all []found
	for _, re := range portPatterns {
		for _, m := range re.FindAllSubmatchIndex(src, -1) {
			n, err := strconv.Atoi(string(src[m[2]:m[3]]))
			if err == nil && n > 0 && n < 65536 {
				all = append(all, found{m[2], n})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b found) int { return a.at - b.at })
	seen := map[int]bool{}
	var out []int
	for _, f := range all {
		if !seen[f.port] {
			seen[f.port] = true
			out = append(out, f.port)
		}
	}
	return out
}
