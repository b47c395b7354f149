package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/version"
)

// cli runs uni in-process and returns its exit status, stdout and stderr.
func cli(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	status := execute(ctx, args, &stdout, &stderr)
	return status, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args      []string
		status    int
		stdout    []string // each must appear on stdout
		stderr    []string // each must appear on stderr
		notStderr string
	}{
		{args: []string{"build", "--help"}, status: 0, stdout: []string{"--build-arg", "-o, --output", "-f, --file", "-q, --quiet", "--disk", "uni build [flags] [CONTEXT]"}},
		{args: []string{"run", "--help"}, status: 0, stdout: []string{"-p, --publish", "--memory", "--cpus", "--boot", "--accel", "--build-arg", "TARGET"}},
		{args: []string{"init", "-h"}, status: 0, stdout: []string{"-p, --port", "--force", "-o, --output"}},
		{args: []string{"kernel", "import", "--help"}, status: 0, stdout: []string{"--name"}},
		{args: []string{"help"}, status: 0, stdout: []string{"build", "run", "init", "kernel", "completion"}},
		{args: []string{"--version"}, status: 0, stdout: []string{"uni " + version.Version()}},
		{args: []string{"version"}, status: 0, stdout: []string{"uni " + version.Version()}},
		{args: []string{"completion", "bash"}, status: 0, stdout: []string{"__start_uni"}},
		{args: []string{}, status: 2, stderr: []string{"no command given", "Available Commands"}},
		{args: []string{"run"}, status: 2, stderr: []string{"run needs a TARGET", "uni run --help"}},
		{args: []string{"run", "a", "b"}, status: 2, stderr: []string{"run takes one TARGET"}},
		{args: []string{"init"}, status: 2, stderr: []string{"init needs a PROGRAM"}},
		{args: []string{"build", "a", "b"}, status: 2, stderr: []string{"build takes one CONTEXT"}},
		{args: []string{"kernel"}, status: 2, stderr: []string{"kernel needs a command"}},
		{args: []string{"kernel", "import"}, status: 2, stderr: []string{"import needs a SRC"}},
		{args: []string{"kernel", "lss"}, status: 2, stderr: []string{`unknown command "lss"`, "did you mean ls?"}},
		{args: []string{"biuld"}, status: 2, stderr: []string{`unknown command "biuld"`, "did you mean build?"}},
		{args: []string{"build", "--outptu", "x"}, status: 2, stderr: []string{"unknown flag: --outptu", "did you mean --output?"}},
		{args: []string{"build", "-build-arg", "X=1"}, status: 2, stderr: []string{"did you mean --build-arg?"}},
		{args: []string{"build", "--build-arg", "=v"}, status: 2, stderr: []string{`--build-arg "=v": want KEY=VALUE`}},
		{args: []string{"run", "--cpus", "many", "x"}, status: 2, stderr: []string{"--cpus"}},
		{args: []string{"init", "-p", "99999", "x.py"}, status: 2, stderr: []string{"-p 99999: want a port number"}},
		// Flags after the positional argument: -o is read (the refusal names it).
		{args: []string{"build", t.TempDir(), "-o", foreign}, status: 1, stderr: []string{"output " + foreign, `"notes.txt"`}, notStderr: "--help"},
		// A missing Unifile is an error, not a usage error.
		{args: []string{"build", "-o", filepath.Join(t.TempDir(), "out"), t.TempDir()}, status: 1, stderr: []string{"no Unifile at"}, notStderr: "--help"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			status, stdout, stderr := cli(t, context.Background(), c.args...)
			if status != c.status {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", status, c.status, stdout, stderr)
			}
			for _, w := range c.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if c.notStderr != "" && strings.Contains(stderr, c.notStderr) {
				t.Errorf("stderr has %q:\n%s", c.notStderr, stderr)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(foreign, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the foreign file now holds %q (%v)", b, err)
	}
}
