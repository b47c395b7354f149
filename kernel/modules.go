package kernel

import (
	"fmt"
	"sort"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/kernel/modinfo"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// DefaultModules names the modules an initrd carries so that one image
// boots on every target we support: QEMU/KVM and clouds with virtio, NVMe
// (AWS Nitro, GCE), AWS ENA, GCE gVNIC, Hyper-V/Azure, VMware; sd_mod for
// the disks behind the SCSI drivers; squashfs for the root. ModuleSet adds
// their dependencies and skips those built into the kernel.
func DefaultModules() []string {
	return []string{
		"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_console", "virtio_rng",
		"nvme",
		"ena", "gve",
		"hv_vmbus", "hv_storvsc", "hv_netvsc",
		"vmxnet3", "vmw_pvscsi",
		"sd_mod",
		"squashfs",
	}
}

// ModuleSet returns the named modules and their dependencies, each after
// what it depends on, with Path the module's host path in the bundle.
// Names built into the kernel are satisfied without a module; unknown
// names are an error naming all of them.
func (b *Bundle) ModuleSet(names ...string) ([]spec.Module, error) {
	idx, err := b.ModuleIndex()
	if err != nil {
		return nil, err
	}
	mods, err := orderModules(idx.Modules, b.Desc.Builtin, names)
	if err != nil {
		return nil, fmt.Errorf("kernel bundle %s (%s): %w", b.Desc.Name, b.Desc.Release, err)
	}
	for i := range mods {
		mods[i].Path = b.ModulePath(mods[i].Path)
	}
	return mods, nil
}

// orderModules picks the wanted modules and what they depend on from all,
// in dependency order: a depth-first walk in the order asked, each module's
// dependencies visited in their listed order, so the result is stable.
func orderModules(all []spec.Module, builtin, wanted []string) ([]spec.Module, error) {
	byName := make(map[string]spec.Module, len(all))
	for _, m := range all {
		byName[m.Name] = m
	}
	isBuiltin := make(map[string]bool, len(builtin))
	for _, n := range builtin {
		isBuiltin[n] = true
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []spec.Module
	var unknown []string
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("module %s: dependency cycle through %s", neededBy, name)
		}
		m, ok := byName[name]
		if !ok {
			state[name] = done
			if !isBuiltin[name] {
				if neededBy != "" {
					name += " (needed by " + neededBy + ")"
				}
				unknown = append(unknown, name)
			}
			return nil
		}
		state[name] = visiting
		for _, d := range m.Depends {
			if err := visit(modinfo.NormalizeName(d), name); err != nil {
				return err
			}
		}
		state[name] = done
		out = append(out, m)
		return nil
	}
	for _, n := range wanted {
		if err := visit(modinfo.NormalizeName(strings.TrimSpace(n)), ""); err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown kernel modules: %s", strings.Join(unknown, ", "))
	}
	return out, nil
}
