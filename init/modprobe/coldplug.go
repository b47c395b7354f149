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
		for _, alias := range newModaliases(sysfs, seen) {
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
// them to it. It reads the devices of every bus (/sys/bus/*/devices/*), which
// are the devices that can have a modalias, rather than walking all of
// /sys/devices: the same devices for a fraction of the system calls, which
// matters on the boot-time budget. The CPU's modalias (for CPU-feature
// modules) is not a bus device and is read on its own.
func newModaliases(sysfs string, seen map[string]bool) []string {
	var files []string
	buses, _ := os.ReadDir(filepath.Join(sysfs, "bus"))
	for _, b := range buses {
		dir := filepath.Join(sysfs, "bus", b.Name(), "devices")
		devs, _ := os.ReadDir(dir)
		for _, d := range devs {
			files = append(files, filepath.Join(dir, d.Name(), "modalias"))
		}
	}
	files = append(files, filepath.Join(sysfs, "devices/system/cpu/modalias"))
	sort.Strings(files)
	var out []string
	for _, f := range files {
		if seen[f] {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue // no modalias: nothing to match
		}
		seen[f] = true
		if a := strings.TrimSpace(string(b)); a != "" {
			out = append(out, a)
		}
	}
	return out
}
