package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestCLIConventions: help, usage errors and their exit statuses follow
// convention (issue 6, finding 10).
func TestCLIConventions(t *testing.T) {
	cases := []struct {
		args   []string
		status int
		want   []string
	}{
		{[]string{"build", "--help"}, 0, []string{"--build-arg", "-o, --output", "Usage:"}},
		{[]string{"run"}, 2, []string{"run needs a TARGET", "uni run --help"}},
		{[]string{"build", "--outptu", "x"}, 2, []string{"unknown flag: --outptu", "did you mean --output?"}},
		{[]string{"biuld"}, 2, []string{`unknown command "biuld"`, "did you mean build?"}},
		{[]string{"version"}, 0, []string{"uni "}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, status := uni(t, t.TempDir(), c.args...)
			if status != c.status {
				t.Errorf("exit %d, want %d\n%s", status, c.status, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// assertTerminalSafe fails unless out is valid UTF-8 free of control
// characters but newline and tab: nothing that a terminal would act on.
func assertTerminalSafe(t *testing.T, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("output is not valid UTF-8: %q", out)
	}
	for _, r := range out {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0) {
			t.Errorf("output holds control character %U: %q", r, out)
			return
		}
	}
}

// TestBinaryGarbageEscaped: a Unifile of binary garbage, or a binary named
// as the Unifile, gets an error whose text reaches the terminal escaped.
func TestBinaryGarbageEscaped(t *testing.T) {
	dir := t.TempDir()
	garbage := "\x1b]0;pwned\x07\x1b[2J\x1b[31m\x00\xff\xfe\u202eFROBNICATE\x9b\r\n"
	writeFiles(t, dir, map[string]string{"Unifile": garbage})
	out, status := uni(t, dir, "build", "-o", filepath.Join(t.TempDir(), "out"), ".")
	if status != 1 {
		t.Errorf("exit %d, want 1\n%q", status, out)
	}
	assertTerminalSafe(t, out)
	// The parser upper-cases the instruction word: compare without case.
	if !strings.Contains(strings.ToLower(out), `\x1b]0;pwned\a\x1b[2j`) || !strings.Contains(out, "Unifile:1") {
		t.Errorf("the error lacks the escaped garbage or its line:\n%s", out)
	}

	ls := testtool.Need(t, "ls")[0]
	out, status = uni(t, dir, "build", "-f", ls, "-o", filepath.Join(t.TempDir(), "out"), ".")
	if status != 1 {
		t.Errorf("-f %s: exit %d, want 1\n%q", ls, status, out)
	}
	assertTerminalSafe(t, out)
	if !strings.Contains(out, `\x7fELF`) {
		t.Errorf("-f %s: the error does not show the ELF header escaped:\n%s", ls, out)
	}
}

// TestInitPorts: uni init finds the port of a Python server written with
// spaces around = (PORT = 8000).
func TestInitPorts(t *testing.T) {
	testtool.Need(t, "python3")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.py": `import http.server, socketserver
PORT = 8000
with socketserver.TCPServer(("", PORT), http.server.SimpleHTTPRequestHandler) as httpd:
    httpd.serve_forever()
`})
	out := mustUni(t, dir, "init", "-o", "-", "app.py")
	if !strings.Contains(out, "EXPOSE 8000\n") {
		t.Errorf("the Unifile lacks EXPOSE 8000:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "Unifile")); err == nil {
		t.Error("-o - wrote a Unifile")
	}
}
