// Package progress shows how far a long step (a download, a decompression)
// has got: a bar with size, rate and ETA on a terminal, and plain lines
// ("downloading X (25.5 MiB)", "downloaded X in 3.1s") on anything else, so
// that CI logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Reporter writes progress to one writer. The zero value and a nil
// *Reporter report nothing.
type Reporter struct {
	w   io.Writer
	tty bool
	now func() time.Time
}

// New reports to w; a bar is drawn only when w is a terminal. A nil w
// reports nothing.
func New(w io.Writer) *Reporter {
	r := &Reporter{w: w, now: time.Now}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = true
	}
	return r
}

// Terminal reports whether r draws bars (its writer is a terminal), where
// only one task at a time may be shown.
func (r *Reporter) Terminal() bool { return r != nil && r.tty }

// Printf writes one line (a newline is added).
func (r *Reporter) Printf(format string, args ...any) {
	if r == nil || r.w == nil {
		return
	}
	fmt.Fprintf(r.w, format+"\n", args...)
}

// Task is one measured step. It is an io.Writer: what is written to it is
// counted, so it can sit beside the real destination in an io.MultiWriter
// or behind an io.TeeReader.
type Task struct {
	r     *Reporter
	verb  string // "downloading"
	done  string // "downloaded"
	what  string
	total int64
	start time.Time
	bar   *progressbar.ProgressBar

	mu       sync.Mutex
	n        int64
	end      bool
	lastLine time.Time // of the last plain line, to space them out
}

// lineEvery spaces the plain progress lines of a long task: a CI log gets
// a line every so often, not one per buffer.
const lineEvery = 5 * time.Second

// Start begins a task of total bytes (-1 when unknown): verb and done are
// the words for it running and finished ("downloading", "downloaded").
func (r *Reporter) Start(verb, done, what string, total int64) *Task {
	t := &Task{r: r, verb: verb, done: done, what: what, total: total}
	if r == nil || r.w == nil {
		return t
	}
	t.start = r.now()
	t.lastLine = t.start
	if r.tty {
		t.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetDescription(verb+" "+what),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
		return t
	}
	if total >= 0 {
		r.Printf("%s %s (%s)", verb, what, Bytes(total))
	} else {
		r.Printf("%s %s", verb, what)
	}
	return t
}

// Write counts len(p) bytes as done.
func (t *Task) Write(p []byte) (int, error) {
	t.Add(int64(len(p)))
	return len(p), nil
}

// Add counts n more bytes as done.
func (t *Task) Add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n += n
	if t.end || t.r == nil || t.r.w == nil {
		return
	}
	if t.bar != nil {
		t.bar.Add64(n)
		return
	}
	if now := t.r.now(); now.Sub(t.lastLine) >= lineEvery {
		t.lastLine = now
		rate := Bytes(int64(float64(t.n) / now.Sub(t.start).Seconds()))
		if t.total > 0 {
			t.r.Printf("  %s: %d%%, %s of %s, %s/s", t.what, t.n*100/t.total, Bytes(t.n), Bytes(t.total), rate)
		} else {
			t.r.Printf("  %s: %s, %s/s", t.what, Bytes(t.n), rate)
		}
	}
}

// Done ends the task and reports it finished.
func (t *Task) Done() {
	if !t.finish() || t.r == nil || t.r.w == nil {
		return
	}
	t.r.Printf("%s %s (%s) in %s", t.done, t.what, Bytes(t.n), t.r.now().Sub(t.start).Round(100*time.Millisecond))
}

// Fail ends the task without reporting it finished; after Done it does nothing.
func (t *Task) Fail() {
	t.finish()
}

// finish stops the bar once and says whether this call did.
func (t *Task) finish() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.end {
		return false
	}
	t.end = true
	if t.bar != nil {
		// Clear the bar's line: the summary (or the caller's error) goes there.
		t.bar.Clear()
		t.bar.Exit()
	}
	return true
}

// Bytes formats n in binary units: "512 B", "25.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
