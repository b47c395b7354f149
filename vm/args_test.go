package vm

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
)

// flagValues returns every value given to flag in args.
func flagValues(args []string, flag string) []string {
	var values []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			values = append(values, args[i+1])
		}
	}
	return values
}

func TestQEMUArgsDirectBoot(t *testing.T) {
	m := Machine{
		Boot: BootDirect, Accel: AccelTCG, MemoryMiB: 256, CPUs: 2,
		Kernel: "/l/kernel", Initrd: "/l/initrd", Rootfs: "/l,odd/rootfs.img",
		Cmdline: "console=ttyS0 quiet",
		Ports:   []PortForward{{HostPort: 8080, GuestPort: 80, Protocol: TCP}, {HostIP: netip.IPv4Unspecified(), HostPort: 53, GuestPort: 53, Protocol: UDP}},
	}
	args, err := QEMUArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"-accel": "tcg", "-cpu": "max", "-m": "256", "-smp": "2",
		"-kernel": "/l/kernel", "-initrd": "/l/initrd", "-append": "console=ttyS0 quiet",
		"-serial": "stdio", "-display": "none",
		"-netdev": "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:53-:53",
	}
	for flag, value := range want {
		if got := flagValues(args, flag); len(got) != 1 || got[0] != value {
			t.Errorf("%s = %q, want [%q]\nargv: %q", flag, got, value, args)
		}
	}
	for _, flag := range []string{"-nodefaults", "-no-user-config", "-no-reboot"} {
		if !slices.Contains(args, flag) {
			t.Errorf("argv lacks %s: %q", flag, args)
		}
	}
	drives := flagValues(args, "-drive")
	if len(drives) != 1 || !strings.Contains(drives[0], "readonly=on") || !strings.HasSuffix(drives[0], "file=/l,,odd/rootfs.img") {
		t.Errorf("rootfs drive %q: want one read-only drive with the comma escaped", drives)
	}
	if devices := flagValues(args, "-device"); !slices.Contains(devices, "virtio-blk-pci,drive=rootfs") || !slices.Contains(devices, "virtio-net-pci,netdev=net0,romfile=") {
		t.Errorf("devices %q: want virtio-blk for the rootfs and virtio-net", devices)
	}
	if slices.Contains(args, "-bios") || len(flagValues(args, "-drive")) != 1 {
		t.Errorf("direct boot must not add firmware: %q", args)
	}
}

func TestQEMUArgsUEFIBootUsesFirmwareAndSnapshot(t *testing.T) {
	m := Machine{Boot: BootUEFI, Accel: AccelKVM, MemoryMiB: 128, CPUs: 1, Disk: "/l/disk.img",
		Firmware: Firmware{Code: "/fw/CODE.fd", Vars: "/tmp/x/VARS.fd"}}
	args, err := QEMUArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	drives := flagValues(args, "-drive")
	want := []string{
		"if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
		"if=pflash,format=raw,unit=1,file=/tmp/x/VARS.fd",
		"if=none,id=disk,format=raw,snapshot=on,file=/l/disk.img",
	}
	if !slices.Equal(drives, want) {
		t.Errorf("drives %q, want %q", drives, want)
	}
	if cpu := flagValues(args, "-cpu"); !slices.Equal(cpu, []string{"host"}) {
		t.Errorf("kvm cpu %q, want host", cpu)
	}
	if slices.Contains(args, "-kernel") {
		t.Errorf("firmware boot must not pass -kernel: %q", args)
	}

	m.Firmware = Firmware{Combined: "/usr/share/qemu/OVMF.fd"}
	args, err = QEMUArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	if bios := flagValues(args, "-bios"); !slices.Equal(bios, []string{"/usr/share/qemu/OVMF.fd"}) {
		t.Errorf("combined OVMF: -bios %q", bios)
	}
	m.Firmware = Firmware{}
	if _, err := QEMUArgs(m); err == nil {
		t.Error("uefi without firmware accepted")
	}
}

func TestQEMUArgsBIOSBootUsesDefaultFirmware(t *testing.T) {
	args, err := QEMUArgs(Machine{Boot: BootBIOS, Accel: AccelTCG, MemoryMiB: 64, CPUs: 1, Disk: "/l/disk.img"})
	if err != nil {
		t.Fatal(err)
	}
	drives := flagValues(args, "-drive")
	if !slices.Equal(drives, []string{"if=none,id=disk,format=raw,snapshot=on,file=/l/disk.img"}) {
		t.Errorf("drives %q", drives)
	}
	if slices.Contains(args, "-bios") || slices.Contains(args, "-kernel") {
		t.Errorf("bios boot takes SeaBIOS, QEMU's default: %q", args)
	}
	if nets := flagValues(args, "-netdev"); !slices.Equal(nets, []string{"user,id=net0"}) {
		t.Errorf("no ports: netdev %q", nets)
	}
}

func TestQEMUArgsRejectsBadMachines(t *testing.T) {
	base := Machine{Boot: BootDirect, Accel: AccelTCG, MemoryMiB: 128, CPUs: 1}
	bad := []struct {
		field string
		edit  func(m *Machine)
	}{
		{"boot", func(m *Machine) { m.Boot = "pxe" }},
		{"accel", func(m *Machine) { m.Accel = "hvf" }},
		{"memory", func(m *Machine) { m.MemoryMiB = 0 }},
		{"memory", func(m *Machine) { m.MemoryMiB = 1 << 20 }},
		{"cpus", func(m *Machine) { m.CPUs = -1 }},
		{"cpus", func(m *Machine) { m.CPUs = 65 }},
		{"command line", func(m *Machine) { m.Cmdline = "quiet\ninit=/bin/sh" }},
		{"protocol", func(m *Machine) { m.Ports = []PortForward{{HostPort: 1, GuestPort: 1, Protocol: 7}} }},
		{"IPv4", func(m *Machine) {
			m.Ports = []PortForward{{HostIP: netip.MustParseAddr("::1"), HostPort: 1, GuestPort: 1}}
		}},
		{"IPv4", func(m *Machine) {
			m.Ports = []PortForward{{HostIP: netip.MustParseAddr("::ffff:127.0.0.1"), HostPort: 1, GuestPort: 1}}
		}},
		{"port 0", func(m *Machine) { m.Ports = []PortForward{{HostPort: 0, GuestPort: 1}} }},
	}
	for _, c := range bad {
		m := base
		c.edit(&m)
		if _, err := QEMUArgs(m); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("bad %s: error %v should name it", c.field, err)
		}
	}
}

func TestMemoryMiBRoundsUp(t *testing.T) {
	for bytes, want := range map[int64]int64{128 << 20: 128, 128<<20 + 1: 129, 1: 1} {
		if got := memoryMiB(bytes); got != want {
			t.Errorf("memoryMiB(%d) = %d, want %d", bytes, got, want)
		}
	}
}

func TestQEMUArgsMicrovmUsesMMIODevices(t *testing.T) {
	m := Machine{
		Boot: BootDirect, Type: MachineMicrovm, Accel: AccelTCG, MemoryMiB: 64, CPUs: 1,
		Kernel: "/l/kernel", Initrd: "/l/initrd", Rootfs: "/l/rootfs.img", Cmdline: "console=ttyS0",
		Ports: []PortForward{{HostPort: 8080, GuestPort: 8080, Protocol: TCP}},
	}
	args, err := QEMUArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := flagValues(args, "-machine"); len(got) != 1 || got[0] != "microvm,acpi=on" {
		t.Errorf("-machine %q, want microvm with ACPI", got)
	}
	devices := flagValues(args, "-device")
	if !slices.Equal(devices, []string{"virtio-blk-device,drive=rootfs", "virtio-net-device,netdev=net0"}) {
		t.Errorf("devices %q: want the MMIO virtio-blk and virtio-net", devices)
	}
	for _, d := range devices {
		if strings.Contains(d, "pci") {
			t.Errorf("a PCI device on microvm: %q", d)
		}
	}
	m.Boot, m.Disk = BootBIOS, "/l/disk.img"
	if _, err := QEMUArgs(m); err == nil {
		t.Error("a firmware boot on microvm was accepted")
	}
	m.Boot, m.Type = BootDirect, "pc-i440fx"
	if _, err := QEMUArgs(m); err == nil {
		t.Error("an unknown machine type was accepted")
	}
}

func TestDirectBootPicksMicrovmWhenTheKernelSaysSo(t *testing.T) {
	cfg := layouttest.Config()
	m, err := plan("/l", cfg, false, defaultOptions())
	if err != nil || m.Type != MachineQ35 {
		t.Fatalf("a kernel without kernel.microvm: %q, %v; want q35", m.Type, err)
	}
	cfg.Kernel.Microvm = true
	if m, err = plan("/l", cfg, false, defaultOptions()); err != nil || m.Type != MachineMicrovm {
		t.Fatalf("kernel.microvm: %q, %v; want microvm", m.Type, err)
	}
	if m, err = plan("/l", cfg, false, defaultOptionsWith(WithMachine(MachineQ35))); err != nil || m.Type != MachineQ35 {
		t.Fatalf("WithMachine(q35): %q, %v", m.Type, err)
	}
	if m, err = plan("/l", cfg, true, defaultOptionsWith(WithBoot(BootBIOS))); err != nil || m.Type != MachineQ35 {
		t.Fatalf("bios boot of a microvm kernel: %q, %v; want q35", m.Type, err)
	}
	cfg.Kernel.Microvm = false
	if _, err := plan("/l", cfg, false, defaultOptionsWith(WithMachine(MachineMicrovm))); err == nil || !strings.Contains(err.Error(), "does not say it boots there") {
		t.Fatalf("microvm forced on a kernel that does not say so: %v", err)
	}
}
