// Command floorinit is the boot benchmark's floor: an init that prints the
// exec marker and powers the VM off at once. Booting the same kernel with
// it measures what the kernel alone costs, against which the real init's
// work is judged.
package main

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func main() {
	if con, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		con.WriteString(spec.ExecMarker + "floor\n" + spec.ExitMarker + "0\n")
		con.Close()
	}
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
