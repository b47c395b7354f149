package kbuild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// expectedSteps is about how many compile and assemble steps (kbuild's CC
// and AS lines) the default linux-mini build of 6.1 prints; the progress
// estimate is measured against it and never shows more than 99%.
const expectedSteps = 1150

// progressEvery spaces the plain progress lines of a build.
const progressEvery = 15 * time.Second

// maker runs kbuild's make in one source tree (and object directory).
type maker struct {
	src, obj string
	env      []string
	log      io.Writer
	nice     int // nice(1) increment of make and its children; 0 for none
}

// args are make's arguments before the targets.
func (m *maker) args() []string {
	a := []string{"-C", m.src, "ARCH=x86_64"}
	if m.obj != m.src {
		a = append(a, "O="+m.obj)
	}
	return a
}

// run runs make quietly and, if it fails, returns its last lines.
func (m *maker) run(ctx context.Context, what string, args ...string) error {
	tail := &lineTail{max: 30}
	err := m.exec(ctx, append(append(m.args(), "-s"), args...), func(line string) { tail.add(line) })
	if err != nil {
		return fmt.Errorf("kernel build: %s: %w\n%s", what, err, tail)
	}
	return nil
}

// compile builds the bzImage, reporting progress by kbuild's step lines.
func (m *maker) compile(ctx context.Context, jobs int) error {
	tail := &lineTail{max: 40}
	start := time.Now()
	steps := 0
	var bar *progressbar.ProgressBar
	if f, ok := m.log.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(expectedSteps,
			progressbar.OptionSetWriter(m.log),
			progressbar.OptionSetDescription("compiling the kernel"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
	}
	last := start
	onLine := func(line string) {
		tail.add(line)
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "CC" && f[0] != "AS") {
			return
		}
		steps++
		if bar != nil {
			if steps < expectedSteps {
				bar.Add(1)
			}
			return
		}
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			fmt.Fprintf(m.log, "  compiling: %d files, about %d%%, %s\n", steps, min(99, steps*100/expectedSteps), now.Sub(start).Round(time.Second))
		}
	}
	args := append(m.args(), "-j"+strconv.Itoa(jobs), "bzImage")
	err := m.exec(ctx, args, onLine)
	if bar != nil {
		bar.Clear()
		bar.Exit()
	}
	if err != nil {
		return fmt.Errorf("kernel build: make bzImage: %w\n%s", err, tail)
	}
	fmt.Fprintf(m.log, "compiled %d files in %s\n", steps, time.Since(start).Round(time.Second))
	return nil
}

// exec runs make with its output (stdout and stderr) going line by line to
// onLine. make runs in a process group of its own: cancelling ctx sends
// SIGTERM to the whole group (make and its compilers), so nothing keeps
// writing into the work directory after exec returns.
func (m *maker) exec(ctx context.Context, args []string, onLine func(string)) error {
	prog := "make"
	if m.nice != 0 {
		prog, args = "nice", append([]string{"-n", strconv.Itoa(m.nice), "make"}, args...)
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = m.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			onLine(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	// Whatever of the group outlived make (it was killed after the grace).
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	pw.Close()
	<-done
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (make stopped)", ctxErr)
	}
	return err
}

// lineTail keeps the last lines of a command's output for its error.
type lineTail struct {
	max   int
	lines []string
}

func (t *lineTail) add(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *lineTail) String() string { return strings.Join(t.lines, "\n") }
