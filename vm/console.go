package vm

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// kernelPanicMarker starts the kernel's panic reason, e.g. when init exits.
const kernelPanicMarker = "Kernel panic - not syncing"

// maxLineBytes bounds the partial line kept between writes, so a guest that
// never prints a newline cannot grow memory; markers are short.
const maxLineBytes = 4096

// consoleScanner watches the serial console, however QEMU splits it into
// writes, for the init's exec and exit lines, and keeps the last lines for
// error messages. It is an io.Writer; its methods are safe to call from
// another goroutine while QEMU writes.
type consoleScanner struct {
	onExec  func(time.Time)
	now     func() time.Time
	tailMax int

	mu      sync.Mutex
	partial []byte
	tail    []string
	panic   string // the kernel's first panic line, which a long trace would push out of the tail
	execed  bool
	exited  bool
	status  int
	exitSig chan struct{} // closed at the first exit line
}

func newConsoleScanner(tailLines int, onExec func(time.Time)) *consoleScanner {
	return &consoleScanner{onExec: onExec, now: time.Now, tailMax: tailLines, exitSig: make(chan struct{})}
}

func (c *consoleScanner) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			c.partial = append(c.partial, rest...)
			if len(c.partial) > maxLineBytes {
				c.line(c.partial)
				c.partial = c.partial[:0]
			}
			break
		}
		c.partial = append(c.partial, rest[:i]...)
		c.line(c.partial)
		c.partial = c.partial[:0]
		rest = rest[i+1:]
	}
	return len(p), nil
}

// line handles one complete console line. Markers are searched anywhere in
// the line because a kernel message can land in front of the init's output.
func (c *consoleScanner) line(raw []byte) {
	text := strings.TrimRight(string(raw), "\r")
	c.remember(text)
	if c.panic == "" && strings.Contains(text, kernelPanicMarker) {
		c.panic = text
	}
	if !c.execed && strings.Contains(text, spec.ExecMarker) {
		c.execed = true
		if c.onExec != nil {
			c.onExec(c.now())
		}
	}
	if i := strings.LastIndex(text, spec.ExitMarker); i >= 0 {
		digits := strings.TrimSpace(text[i+len(spec.ExitMarker):])
		status, err := strconv.Atoi(digits)
		if err != nil {
			return // the app printed something that merely looks like the marker
		}
		// The last exit line wins: the init prints it after the app is gone,
		// so anything the app printed that looks like it came earlier.
		c.status = status
		if !c.exited {
			c.exited = true
			close(c.exitSig)
		}
	}
}

func (c *consoleScanner) remember(text string) {
	if c.tailMax <= 0 {
		return
	}
	if len(c.tail) == c.tailMax {
		copy(c.tail, c.tail[1:])
		c.tail = c.tail[:c.tailMax-1]
	}
	c.tail = append(c.tail, text)
}

// flush treats an unterminated last line as complete, for when QEMU is gone.
func (c *consoleScanner) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.line(c.partial)
		c.partial = c.partial[:0]
	}
}

// exitStatus reports the exit status from the init's last exit line.
func (c *consoleScanner) exitStatus() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.exited
}

// lastLines is the console's tail, oldest first.
func (c *consoleScanner) lastLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tail...)
}

// exitSeen is closed when the first exit line has been seen.
func (c *consoleScanner) exitSeen() <-chan struct{} { return c.exitSig }

// kernelPanic is the kernel's first panic line, or "".
func (c *consoleScanner) kernelPanic() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panic
}
