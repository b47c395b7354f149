//go:build !linux

package vm

import "syscall"

// childProcAttr puts QEMU in its own process group, so a terminal's Ctrl-C
// reaches only us; we stop QEMU through the context.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
