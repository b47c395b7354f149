package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// powerOff flushes the disks and turns the VM off. PID 1 must never return
// (the kernel would panic, and could reboot into a loop), so if the power-off
// call fails it sleeps forever.
func powerOff(con *console) {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		con.errorf("power off: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
