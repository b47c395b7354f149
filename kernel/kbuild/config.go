package kbuild

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Assignment is one CONFIG_ line of a fragment or a .config: Value is "y",
// "m", "n" (also for "# CONFIG_X is not set"), a number or a quoted string.
type Assignment struct {
	File   string // the fragment's name, for messages
	Line   int
	Symbol string // CONFIG_…
	Value  string
}

func (a Assignment) String() string {
	if a.Value == "n" {
		return fmt.Sprintf("%s:%d: # %s is not set", a.File, a.Line, a.Symbol)
	}
	return fmt.Sprintf("%s:%d: %s=%s", a.File, a.Line, a.Symbol, a.Value)
}

// ParseConfig reads a fragment or a .config: CONFIG_X=v lines and
// "# CONFIG_X is not set" lines; other comments and blank lines are
// skipped. Anything else is an error naming the file and line.
func ParseConfig(name string, r io.Reader) ([]Assignment, error) {
	var out []Assignment
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#"); ok {
			rest = strings.TrimSpace(rest)
			if sym, ok := strings.CutSuffix(rest, " is not set"); ok && isSymbol(sym) {
				out = append(out, Assignment{File: name, Line: n, Symbol: sym, Value: "n"})
			}
			continue
		}
		sym, val, ok := strings.Cut(line, "=")
		if !ok || !isSymbol(sym) || val == "" {
			return nil, fmt.Errorf("%s:%d: %q: want CONFIG_NAME=value or # CONFIG_NAME is not set", name, n, line)
		}
		if err := checkValue(val); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", name, n, sym, err)
		}
		out = append(out, Assignment{File: name, Line: n, Symbol: sym, Value: val})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func isSymbol(s string) bool {
	rest, ok := strings.CutPrefix(s, "CONFIG_")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// checkValue accepts y, m, n, numbers (decimal or hex) and quoted strings
// without newlines; Kconfig takes nothing else.
func checkValue(v string) error {
	switch {
	case v == "y" || v == "m" || v == "n":
		return nil
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		return nil
	}
	s := strings.TrimPrefix(strings.TrimPrefix(v, "-"), "0x")
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return fmt.Errorf("value %q: want y, m, n, a number or a quoted string", v)
		}
	}
	if s == "" {
		return fmt.Errorf("value %q: want y, m, n, a number or a quoted string", v)
	}
	return nil
}

// Requirement is an option the guest cannot boot without, and why.
type Requirement struct {
	Symbol string
	Why    string
}

// Required lists what uni's init and boot paths need built into every
// kernel uni builds. A configuration without one of them would build and
// then fail at boot (a kernel panic, or no console); the build refuses it.
func Required() []Requirement {
	return []Requirement{
		{"CONFIG_64BIT", "uni's init and apps are x86-64 programs"},
		{"CONFIG_BINFMT_ELF", "the init and the app are ELF programs"},
		{"CONFIG_BLK_DEV_INITRD", "the init comes in the initrd"},
		{"CONFIG_RD_ZSTD", "the initrd is zstd-compressed"},
		{"CONFIG_DEVTMPFS", "the init mounts devtmpfs on /dev"},
		{"CONFIG_PROC_FS", "the init mounts /proc"},
		{"CONFIG_SYSFS", "the init finds disks in /sys/class/block"},
		{"CONFIG_TMPFS", "the init mounts tmpfs on /tmp, /run and /dev/shm"},
		{"CONFIG_UNIX98_PTYS", "the init mounts devpts on /dev/pts"},
		{"CONFIG_FUTEX", "Go programs (the init) need futexes"},
		{"CONFIG_EPOLL", "Go programs (the init) need epoll"},
		{"CONFIG_SQUASHFS", "the rootfs is squashfs"},
		{"CONFIG_SQUASHFS_ZSTD", "uni writes the rootfs with zstd"},
		{"CONFIG_VIRTIO_PCI", "QEMU's disk and NIC are virtio PCI devices"},
		{"CONFIG_VIRTIO_BLK", "the rootfs is on a virtio disk"},
		{"CONFIG_VIRTIO_NET", "the NIC is virtio-net"},
		{"CONFIG_NET", "the init brings up the network"},
		{"CONFIG_INET", "the init configures IPv4 (DHCP)"},
		{"CONFIG_PACKET", "DHCP uses an AF_PACKET socket"},
		{"CONFIG_SERIAL_8250_CONSOLE", "the console (and uni run's exit status) is on ttyS0"},
		{"CONFIG_EFI_STUB", "UEFI boots start the kernel through its EFI stub"},
		{"CONFIG_EFI_PARTITION", "disk.img is GPT; the rootfs is one of its partitions"},
	}
}

// ConfigError says why a resolved configuration cannot make a uni kernel.
type ConfigError struct {
	Missing []Requirement // required options that are not built in
	Modules []string      // options set to m: a built bundle has no modules
	Unmet   []Assignment  // fragment lines the resolved .config does not honour
	// offBy names, for a missing option, the fragment line that turned it off.
	offBy map[string]Assignment
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("kernel configuration")
	if len(e.Missing) > 0 {
		b.WriteString(": uni's init needs these built in (=y), and the configuration has them off:")
		for _, r := range e.Missing {
			fmt.Fprintf(&b, "\n  %s (%s)", r.Symbol, r.Why)
			if a, ok := e.offBy[r.Symbol]; ok {
				fmt.Fprintf(&b, ", turned off by %s:%d", a.File, a.Line)
			}
		}
	}
	if len(e.Modules) > 0 {
		b.WriteString("\n  built as modules, which a built kernel bundle does not carry (set them =y): ")
		b.WriteString(strings.Join(e.Modules, ", "))
	}
	if len(e.Unmet) > 0 {
		b.WriteString("\n  fragment lines that did not take (a dependency is off, or the option does not exist in this source):")
		for _, a := range e.Unmet {
			fmt.Fprintf(&b, "\n    %s", a)
		}
	}
	return b.String()
}

// CheckConfig compares a resolved .config with the fragments it was made
// from and with Required: a required option not built in, an option left
// as a module, or a fragment line whose value did not take (the last one
// for each symbol counts) is a *ConfigError.
func CheckConfig(resolved []Assignment, fragments []Assignment) error {
	have := map[string]string{}
	var modules []string
	for _, a := range resolved {
		have[a.Symbol] = a.Value
		if a.Value == "m" {
			modules = append(modules, a.Symbol)
		}
	}
	last := map[string]Assignment{}
	var order []string
	for _, a := range fragments {
		if _, seen := last[a.Symbol]; !seen {
			order = append(order, a.Symbol)
		}
		last[a.Symbol] = a
	}
	e := &ConfigError{offBy: map[string]Assignment{}}
	for _, r := range Required() {
		if have[r.Symbol] != "y" {
			e.Missing = append(e.Missing, r)
			if a, ok := last[r.Symbol]; ok && a.Value != "y" {
				e.offBy[r.Symbol] = a
			}
		}
	}
	sort.Strings(modules)
	e.Modules = modules
	for _, sym := range order {
		a := last[sym]
		got, ok := have[sym]
		if !ok {
			got = "n"
		}
		if got != a.Value {
			e.Unmet = append(e.Unmet, a)
		}
	}
	if len(e.Missing) == 0 && len(e.Modules) == 0 && len(e.Unmet) == 0 {
		return nil
	}
	return e
}
