//go:build linux

package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// openPTY opens a pseudo-terminal: the terminal end for the Reporter and
// the master end to read what it drew.
func openPTY(t *testing.T) (term, master *os.File) {
	t.Helper()
	testtool.NeedFile(t, "/dev/ptmx", "a Linux with devpts")
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close(); master.Close() })
	return term, master
}

// On a terminal a task draws a bar with the bytes done, the total, the
// rate and the time left, then clears it for the summary line.
func TestBarOnTerminal(t *testing.T) {
	term, master := openPTY(t)
	r := New(term)
	if !r.tty {
		t.Fatal("a pseudo-terminal is not seen as a terminal")
	}
	var drawn bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&drawn, master); close(copied) }()
	task := r.Start("downloading", "downloaded", "linux-image-x 1", 4<<20)
	for range 4 {
		task.Add(1 << 20)
		time.Sleep(120 * time.Millisecond) // past the bar's redraw throttle
	}
	task.Done()
	time.Sleep(100 * time.Millisecond)
	term.Close()
	master.SetReadDeadline(time.Now().Add(time.Second))
	<-copied
	out := drawn.String()
	for _, want := range []string{"downloading linux-image-x 1", "/4.0 MiB", "MiB/s", "%", "downloaded linux-image-x 1 (4.0 MiB) in "} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal lacks %q:\n%q", want, out)
		}
	}
}
