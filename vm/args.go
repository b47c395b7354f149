package vm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Boot modes.
const (
	BootDirect = "direct" // -kernel/-initrd, rootfs.img as a read-only disk
	BootUEFI   = "uefi"   // OVMF firmware boots disk.img
	BootBIOS   = "bios"   // SeaBIOS boots disk.img
)

// QEMU machine types.
const (
	// MachineQ35 is the classic PC (PCI, firmware or SeaBIOS's linuxboot
	// for direct boot); every kernel boots on it, and disks boot only on it.
	MachineQ35 = "q35"
	// MachineMicrovm is QEMU's minimal machine: no PCI, no legacy
	// firmware path, virtio over MMIO, ACPI for power-off. Direct boot
	// uses it when the image's kernel says it boots there (kernel.microvm).
	MachineMicrovm = "microvm"
)

// Machine is everything the QEMU command line depends on, resolved to
// values and paths; QEMUArgs turns it into argv without looking at the host.
type Machine struct {
	Boot      string // BootDirect, BootUEFI or BootBIOS
	Type      string // MachineQ35 (also when empty) or MachineMicrovm (direct boot only)
	Accel     string // AccelKVM or AccelTCG (already picked)
	MemoryMiB int64
	CPUs      int

	// Direct boot.
	Kernel  string
	Initrd  string
	Rootfs  string
	Cmdline string

	// Firmware boots.
	Disk     string
	Firmware Firmware // UEFI only

	Ports []PortForward
}

// Firmware is the OVMF UEFI firmware: a read-only code image with a
// writable copy of its variable store, or one combined image.
type Firmware struct {
	Code     string
	Vars     string // a private copy; QEMU writes to it
	Combined string // OVMF.fd used with -bios when no split images exist
}

// QEMUArgs is the argv (without the program name) that boots m. The serial
// console is QEMU's stdout; nothing else is on it.
func QEMUArgs(m Machine) ([]string, error) {
	cpu, err := cpuModel(m.Accel)
	if err != nil {
		return nil, err
	}
	if m.MemoryMiB < spec.MinMemoryBytes>>20 || m.MemoryMiB > spec.MaxMemoryBytes>>20 {
		return nil, fmt.Errorf("memory %d MiB: outside %d MiB to %d MiB", m.MemoryMiB, spec.MinMemoryBytes>>20, spec.MaxMemoryBytes>>20)
	}
	if m.CPUs < spec.MinCPUs || m.CPUs > spec.MaxCPUs {
		return nil, fmt.Errorf("cpus %d: outside %d to %d", m.CPUs, spec.MinCPUs, spec.MaxCPUs)
	}
	machine, dev := "q35", "pci"
	switch m.Type {
	case "", MachineQ35:
	case MachineMicrovm:
		if m.Boot != BootDirect {
			return nil, fmt.Errorf("machine microvm: boots the kernel directly only, not %s", m.Boot)
		}
		// ACPI: the kernel finds the virtio-mmio devices in its tables
		// and powers off through them.
		machine, dev = "microvm,acpi=on", "device"
	default:
		return nil, fmt.Errorf("machine %q: want q35 or microvm", m.Type)
	}
	net, err := netArgs(m.Ports, dev)
	if err != nil {
		return nil, err
	}
	args := []string{
		"-nodefaults", "-no-user-config",
		"-machine", machine,
		"-accel", m.Accel,
		"-cpu", cpu,
		"-m", strconv.FormatInt(m.MemoryMiB, 10),
		"-smp", strconv.Itoa(m.CPUs),
		"-display", "none",
		"-serial", "stdio",
		// A guest reboot or panic (panic=-1) ends QEMU instead of looping.
		"-no-reboot",
	}
	switch m.Boot {
	case BootDirect:
		if err := checkCmdline(m.Cmdline); err != nil {
			return nil, err
		}
		args = append(args,
			"-kernel", m.Kernel,
			"-initrd", m.Initrd,
			"-append", m.Cmdline,
			"-drive", "if=none,id=rootfs,format=raw,readonly=on,file="+escapeOption(m.Rootfs),
			"-device", "virtio-blk-"+dev+",drive=rootfs",
		)
	case BootUEFI:
		switch {
		case m.Firmware.Code != "" && m.Firmware.Vars != "":
			args = append(args,
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escapeOption(m.Firmware.Code),
				"-drive", "if=pflash,format=raw,unit=1,file="+escapeOption(m.Firmware.Vars),
			)
		case m.Firmware.Combined != "":
			args = append(args, "-bios", m.Firmware.Combined)
		default:
			return nil, fmt.Errorf("boot uefi: no OVMF firmware given")
		}
		args = append(args, diskArgs(m.Disk)...)
	case BootBIOS:
		args = append(args, diskArgs(m.Disk)...)
	default:
		return nil, fmt.Errorf("boot %q: want direct, uefi or bios", m.Boot)
	}
	return append(args, net...), nil
}

// diskArgs attaches disk.img with snapshot=on: the guest's writes go to a
// temporary overlay and the image is never modified.
func diskArgs(disk string) []string {
	return []string{
		"-drive", "if=none,id=disk,format=raw,snapshot=on,file=" + escapeOption(disk),
		"-device", "virtio-blk-pci,drive=disk,bootindex=0",
	}
}

// netArgs gives the guest one virtio NIC on QEMU's user network, with a
// hostfwd rule per forwarded port. The NIC has no option ROM (romfile=):
// iPXE would only add a network boot attempt to firmware boots. dev is
// the virtio transport: "pci", or "device" (MMIO, on microvm).
func netArgs(ports []PortForward, dev string) ([]string, error) {
	netdev := "user,id=net0"
	for _, p := range ports {
		if err := p.check(); err != nil {
			return nil, err
		}
		// Every part is typed: a protocol name, an IPv4 address in dotted
		// form, two numbers. No comma or other option can come through.
		netdev += fmt.Sprintf(",hostfwd=%s:%s:%d-:%d", p.Protocol, p.hostIP(), p.HostPort, p.GuestPort)
	}
	if dev != "pci" {
		return []string{"-netdev", netdev, "-device", "virtio-net-" + dev + ",netdev=net0"}, nil
	}
	return []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile="}, nil
}

// checkCmdline wants printable ASCII of a length the kernel takes.
func checkCmdline(s string) error {
	if len(s) > spec.MaxCmdline {
		return fmt.Errorf("kernel command line: %d bytes, more than %d", len(s), spec.MaxCmdline)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("kernel command line: byte %d is %q, want printable ASCII", i, s[i])
		}
	}
	return nil
}

// escapeOption doubles commas, QEMU's escape for a comma inside an option
// value, so a path with a comma cannot inject further options.
func escapeOption(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}
