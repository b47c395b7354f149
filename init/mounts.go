package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

type mountPoint struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   os.FileMode
}

// earlyMounts are the kernel filesystems, in mount order (/dev before
// /dev/pts and /dev/shm).
var earlyMounts = []mountPoint{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666", 0o755},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
}

// movedMounts are carried into the new root; /dev/pts and /dev/shm travel
// with /dev.
var movedMounts = spec.MountPoints

func mountEarly() error {
	for _, m := range earlyMounts {
		if err := os.MkdirAll(m.target, m.mode); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.target, err)
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// switchRoot mounts dev read-only at newRoot, moves the kernel filesystems
// into it, frees the initramfs and makes newRoot the root, the way
// switch_root(8) does: the initramfs cannot be unmounted, so its files are
// deleted and the new root is moved over "/".
func switchRoot(dev, fstype string) error {
	if fstype == "" {
		fstype = "squashfs"
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, newRoot, fstype, unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, fstype, newRoot, err)
	}
	for _, m := range movedMounts {
		target := newRoot + m
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to %s (the rootfs needs an empty %s directory): %w", m, target, m, err)
		}
	}
	if err := freeInitramfs(); err != nil {
		return err
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", newRoot, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

// freeInitramfs deletes the initramfs's files (they hold RAM) without
// crossing into other filesystems, i.e. the new root.
func freeInitramfs() error {
	var root unix.Stat_t
	if err := unix.Lstat("/", &root); err != nil {
		return err
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range entries {
		removeOnDevice(filepath.Join("/", e.Name()), root.Dev)
	}
	return nil
}

// removeOnDevice removes p and what is below it, skipping anything on
// another device (mount points). Errors are ignored: this only frees memory.
func removeOnDevice(p string, dev uint64) {
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil || st.Dev != dev {
		return
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			removeOnDevice(filepath.Join(p, e.Name()), dev)
		}
		_ = unix.Rmdir(p)
		return
	}
	_ = unix.Unlink(p)
}

func bindMount(src, target string) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, target, err)
	}
	return nil
}
