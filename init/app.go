package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// forwardedSignals are passed on to the app; the VM's "shutdown" arrives as
// one of them.
var forwardedSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2}

// runApp prepares the process environment, starts the app as the init's
// child with stdio on the console, forwards signals to it and reaps every
// zombie until the app itself exits. It returns the app's exit status, 128+n
// for a death by signal n.
func runApp(con *console, cfg *spec.InitConfig) (int, error) {
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return 0, fmt.Errorf("hostname %q: %w", cfg.Hostname, err)
		}
	}
	raiseFileLimit(con)
	dir := cfg.WorkingDir
	if dir == "" {
		dir = "/"
	}
	if _, err := os.Stat(cfg.Args[0]); err != nil {
		return 0, fmt.Errorf("args[0]: %w", err)
	}

	// Signals are caught before the app exists, so that none is lost
	// between its start and the forwarding loop.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{unix.SIGCHLD}, forwardedSignals...)...)

	con.printf("%s%s\n", spec.ExecMarker, cfg.Args[0])
	pid, err := syscall.ForkExec(cfg.Args[0], cfg.Args, &syscall.ProcAttr{
		Dir:   dir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID, Groups: []uint32{}},
		},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s (dir %s, uid %d, gid %d): %w", cfg.Args[0], dir, cfg.UID, cfg.GID, err)
	}
	con.mark("app started")
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			_ = unix.Kill(pid, sig.(unix.Signal))
			continue
		}
		if status, exited := reap(pid); exited {
			return status, nil
		}
	}
	return 0, fmt.Errorf("signal channel closed")
}

// reap collects every exited child; orphans of the app become the init's
// children too. It reports the app's exit status once the app is among them.
func reap(app int) (status int, appExited bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return status, appExited
		}
		if pid != app {
			continue
		}
		appExited = true
		switch {
		case ws.Exited():
			status = ws.ExitStatus()
		case ws.Signaled():
			status = 128 + int(ws.Signal())
		}
	}
}

// raiseFileLimit lifts RLIMIT_NOFILE to the kernel's maximum (fs.nr_open):
// servers want many sockets, and there is nothing else on the VM to protect.
func raiseFileLimit(con *console) {
	limit := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			limit = n
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		con.errorf("raise RLIMIT_NOFILE to %d: %v", limit, err)
	}
}
