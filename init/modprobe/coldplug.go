package modprobe

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Coldplug loads the modules for the devices present under sysfs (normally
// "/sys"), then looks again for devices that those modules created (a bus
// driver such as virtio_pci adds the virtio devices that virtio_blk and
// virtio_net then match), until a round loads nothing new. Driver probing
// runs inside finit_module, so a device a module adds is in sysfs when the
// load returns. It returns the errors of the modules that failed; the others
// are loaded regardless.
func (l *Loader) Coldplug(sysfs string) error {
	seen := map[string]bool{}
	var errs []error
	for {
		var wanted []string
		for _, alias := range newModaliases(sysfs, l.buses(sysfs), seen) {
			for _, name := range l.Matching(alias) {
				if !l.Loaded(name) && !contains(wanted, name) {
					wanted = append(wanted, name)
				}
			}
		}
		if len(wanted) == 0 {
			return errors.Join(errs...)
		}
		if err := l.LoadAll(wanted); err != nil {
			errs = append(errs, err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// newModaliases returns the modaliases of the devices not in seen, and adds
// them to it. It reads only the devices of the buses that some module's
// aliases name (/sys/bus/<bus>/devices/*: a "pci:…" alias can only match a
// PCI device), rather than walking all of /sys/devices: sysfs reads are
// slow under emulation, and this is on the boot-time budget. The CPU's
// modalias (for CPU-feature modules) is not a bus device and is read on
// its own, when a "cpu:" alias asks for it.
func newModaliases(sysfs string, buses []string, seen map[string]bool) []string {
	var files []string
	for _, bus := range buses {
		if bus == "cpu" {
			files = append(files, filepath.Join(sysfs, "devices/system/cpu/modalias"))
			continue
		}
		dir := filepath.Join(sysfs, "bus", bus, "devices")
		devs, _ := os.ReadDir(dir)
		for _, d := range devs {
			files = append(files, filepath.Join(dir, d.Name(), "modalias"))
		}
	}
	sort.Strings(files)
	var out []string
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true // a device's attributes come with it: no need to read it twice
		b, err := os.ReadFile(f)
		if err != nil {
			continue // no modalias: nothing to match
		}
		if a := strings.TrimSpace(string(b)); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// buses lists, sorted, the buses the modules' aliases name: the part of
// each pattern before its first ':' ("pci" of "pci:v00001AF4d*"). A
// pattern that starts with a wildcard could match any bus, so it asks for
// every one.
func (l *Loader) buses(sysfs string) []string {
	set := map[string]bool{}
	for _, m := range l.ordered {
		for _, a := range m.Aliases {
			bus, _, ok := strings.Cut(a, ":")
			if !ok || bus == "" || strings.ContainsAny(bus, "*?[\\") {
				return allBuses(sysfs)
			}
			set[bus] = true
		}
	}
	out := make([]string, 0, len(set))
	for b := range set {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// allBuses is every bus under sysfs, and the CPU.
func allBuses(sysfs string) []string {
	out := []string{"cpu"}
	ents, _ := os.ReadDir(filepath.Join(sysfs, "bus"))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
