package vm

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

var hostfwdRule = regexp.MustCompile(`^hostfwd=(tcp|udp):(127\.0\.0\.1|0\.0\.0\.0|\d+\.\d+\.\d+\.\d+):([0-9]+)-:([0-9]+)$`)

// checkArgv fails t unless every argument of args is one QEMU is meant to
// get for m's boot from cfg: a known flag with a value of the expected
// form, and a -netdev of exactly user,id=net0 plus one hostfwd rule per
// wanted forward, each binding the wanted address.
func checkArgv(t *testing.T, args []string, boot, dir string, cfg spec.ImageConfig, want []PortForward) {
	t.Helper()
	fixed := map[string][]string{
		"-machine": {"q35"}, "-accel": {"tcg"}, "-cpu": {"max"}, "-display": {"none"}, "-serial": {"stdio"},
		"-kernel": {dir + "/kernel"}, "-initrd": {dir + "/initrd"},
		"-device": {"virtio-blk-pci,drive=rootfs", "virtio-blk-pci,drive=disk,bootindex=0", "virtio-net-pci,netdev=net0,romfile="},
		"-drive": {
			"if=none,id=rootfs,format=raw,readonly=on,file=" + dir + "/rootfs.img",
			"if=none,id=disk,format=raw,snapshot=on,file=" + dir + "/disk.img",
			"if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
			"if=pflash,format=raw,unit=1,file=/scratch/VARS.fd",
		},
	}
	netdevs := 0
	for i := 0; i < len(args); i++ {
		flag := args[i]
		switch flag {
		case "-nodefaults", "-no-user-config", "-no-reboot":
			continue
		}
		if i+1 >= len(args) {
			t.Fatalf("flag %q without a value: %q", flag, args)
		}
		i++
		v := args[i]
		switch flag {
		case "-m":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < MinMemory(boot)>>20 || n > spec.MaxMemoryBytes>>20 {
				t.Fatalf("-m %q", v)
			}
		case "-smp":
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 64 || n != cfg.CPUs {
				t.Fatalf("-smp %q (cpus %d)", v, cfg.CPUs)
			}
		case "-append":
			if boot != BootDirect || v != cfg.Cmdline {
				t.Fatalf("-append %q on a %s boot of cmdline %q", v, boot, cfg.Cmdline)
			}
			for _, c := range []byte(v) {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("-append holds %q", c)
				}
			}
		case "-netdev":
			netdevs++
			checkNetdev(t, v, want)
		default:
			allowed, ok := fixed[flag]
			if !ok || !slices.Contains(allowed, v) {
				t.Fatalf("argument %s %q is outside the allowed set\nargv: %q", flag, v, args)
			}
		}
	}
	if netdevs != 1 {
		t.Fatalf("%d -netdev arguments: %q", netdevs, args)
	}
}

func checkNetdev(t *testing.T, v string, want []PortForward) {
	t.Helper()
	var rules []string
	rest := v
	prefix := "user,id=net0"
	if len(rest) < len(prefix) || rest[:len(prefix)] != prefix {
		t.Fatalf("-netdev %q does not start with %s", v, prefix)
	}
	rest = rest[len(prefix):]
	for rest != "" {
		if rest[0] != ',' {
			t.Fatalf("-netdev %q: unexpected %q", v, rest)
		}
		rest = rest[1:]
		end := len(rest)
		for j := 0; j < len(rest); j++ {
			if rest[j] == ',' {
				end = j
				break
			}
		}
		rules = append(rules, rest[:end])
		rest = rest[end:]
	}
	if len(rules) != len(want) || len(rules) > max(MaxDefaultPorts, len(want)) {
		t.Fatalf("-netdev %q has %d rules, want %d", v, len(rules), len(want))
	}
	for i, r := range rules {
		m := hostfwdRule.FindStringSubmatch(r)
		w := want[i]
		if m == nil || m[1] != w.Protocol.String() || m[2] != w.hostIP().String() ||
			m[3] != strconv.Itoa(int(w.HostPort)) || m[4] != strconv.Itoa(int(w.GuestPort)) || w.HostPort == 0 || w.GuestPort == 0 {
			t.Fatalf("-netdev rule %q is not the forward %s", r, w)
		}
	}
}

// FuzzQEMUArgs feeds config.json bytes through the layout's validation and
// the VM's planning into QEMU's argv, for every boot mode, and checks that
// no input yields an argument outside the allowed set.
func FuzzQEMUArgs(f *testing.F) {
	base := layouttest.Config()
	base.Rootfs = spec.RootfsRef{Type: "squashfs", Size: 1, Digest: "sha256:" + fmt.Sprintf("%064x", 1), SuperblockDigest: "sha256:" + fmt.Sprintf("%064x", 2)}
	data, _ := json.Marshal(base)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := layout.ParseConfig(data)
		if err != nil {
			return
		}
		const dir = "/layouts/x"
		for _, boot := range []string{BootDirect, BootUEFI, BootBIOS} {
			m, err := plan(dir, *cfg, true, defaultOptionsWith(WithBoot(boot)))
			if err != nil {
				continue
			}
			m.Accel = AccelTCG
			if boot == BootUEFI {
				m.Firmware = Firmware{Code: "/fw/CODE.fd", Vars: "/scratch/VARS.fd"}
			}
			args, err := QEMUArgs(m)
			if err != nil {
				continue
			}
			want, err := DefaultPorts(*cfg)
			if err != nil {
				t.Fatalf("plan accepted ports DefaultPorts refuses: %v", err)
			}
			checkArgv(t, args, boot, dir, *cfg, want)
		}
	})
}

// FuzzPortForward: whatever -p says, the rule binds the address it parsed
// to and nothing else reaches -netdev.
func FuzzPortForward(f *testing.F) {
	for _, s := range []string{"8080", "0.0.0.0:80:80/udp", "80:80/tcp,guestfwd=tcp:10.0.2.100:1-cmd:touch /tmp/x", "127.0.0.1:1:1,hostfwd=tcp::2-:2", "tcp::0.0.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePortForward(s)
		if err != nil {
			return
		}
		args, err := QEMUArgs(Machine{Boot: BootBIOS, Accel: AccelTCG, MemoryMiB: 128, CPUs: 1, Disk: "/layouts/x/disk.img", Ports: []PortForward{p}})
		if err != nil {
			t.Fatalf("a parsed forward %+v fails QEMUArgs: %v", p, err)
		}
		checkArgv(t, args, BootBIOS, "/layouts/x", spec.ImageConfig{CPUs: 1}, []PortForward{p})
	})
}

// The fuzz target's path, on a valid config, does reach an argv.
func TestQEMUArgsFromAValidConfig(t *testing.T) {
	base := layouttest.Config()
	base.Rootfs = spec.RootfsRef{Type: "squashfs", Size: 1, Digest: "sha256:" + fmt.Sprintf("%064x", 1), SuperblockDigest: "sha256:" + fmt.Sprintf("%064x", 2)}
	data, _ := json.Marshal(base)
	cfg, err := layout.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := plan("/layouts/x", *cfg, true, defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m.Accel = AccelTCG
	args, err := QEMUArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	if nd := flagValues(args, "-netdev"); !slices.Equal(nd, []string{"user,id=net0,hostfwd=tcp:127.0.0.1:8080-:8080"}) {
		t.Fatalf("-netdev %q", nd)
	}
	want, _ := DefaultPorts(*cfg)
	checkArgv(t, args, BootDirect, "/layouts/x", *cfg, want)
}
