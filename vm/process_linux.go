package vm

import "syscall"

// childProcAttr puts QEMU in its own process group, so a terminal's Ctrl-C
// reaches only us (we stop QEMU through the context), and has the kernel
// kill it if we die without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
