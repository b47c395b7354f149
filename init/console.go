package main

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// console writes the init's messages. Until /dev is mounted it writes to
// whatever fd 2 the kernel gave; attach then makes /dev/console the init's
// stdin, stdout and stderr, which the app inherits.
type console struct {
	mu    sync.Mutex
	debug bool // uni.debug on the kernel command line: print a boot timeline
}

func openConsole() *console { return &console{} }

// attach opens /dev/console onto fds 0, 1 and 2.
func (c *console) attach() {
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		c.errorf("/dev/console: %v", err)
		return
	}
	for target := 0; target <= 2; target++ {
		if fd != target {
			_ = unix.Dup3(fd, target, 0)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(os.Stdout, format, args...)
}

// errorf prints one "uni: init: …" line.
func (c *console) errorf(format string, args ...any) {
	c.printf("uni: init: "+format+"\n", args...)
}

// mark prints, in debug mode, how long after the kernel started the init
// reached a step (CLOCK_BOOTTIME counts from the kernel's start).
func (c *console) mark(step string) {
	if !c.debug {
		return
	}
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return
	}
	ms := float64(ts.Nano()) / 1e6
	c.printf("uni: t=%.1fms %s\n", ms, step)
}
