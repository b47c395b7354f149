package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
	"github.com/uniforge/packer-plugin-unikernel/vm"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var ports, bargs listFlag
	fs.Var(&ports, "p", "forward a port: [IP:]HOST:GUEST[/udp], repeatable (default: every EXPOSEd port on 127.0.0.1)")
	memory := fs.String("memory", "", "guest RAM, e.g. 256M (default: the image's MEMORY)")
	cpus := fs.Int("cpus", 0, "guest CPUs (default: the image's CPUS)")
	boot := fs.String("boot", vm.BootDirect, "boot mode: direct (kernel and initrd given to QEMU), uefi or bios (firmware boots disk.img)")
	accel := fs.String("accel", vm.AccelAuto, "accelerator: auto, kvm or tcg")
	file := fs.String("f", "", "the Unifile, when TARGET is a build context")
	fs.Var(&bargs, "build-arg", "build-time variable when TARGET is built, repeatable")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		return errUsage
	}
	var opts []vm.Option
	for _, p := range ports {
		pf, err := vm.ParsePortForward(p)
		if err != nil {
			return fmt.Errorf("-p %s: %w", p, err)
		}
		opts = append(opts, vm.WithPorts(pf))
	}
	if *memory != "" {
		n, err := unifile.ParseMemory(*memory)
		if err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		opts = append(opts, vm.WithMemory(n))
	}
	if *cpus != 0 {
		opts = append(opts, vm.WithCPUs(*cpus))
	}
	bm, err := buildArgs(bargs, os.Getenv)
	if err != nil {
		return err
	}
	dir, cleanup, err := runnableLayout(ctx, pos[0], *file, bm, *boot != vm.BootDirect, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	l, err := layout.Open(dir)
	if err != nil {
		return err
	}
	if err := l.Verify(ctx); err != nil {
		return err
	}
	if *boot != vm.BootDirect {
		if err := image.EnsureDisk(ctx, l, resolveBundle); err != nil {
			return err
		}
	}
	opts = append(opts, vm.WithBoot(*boot), vm.WithAccel(*accel), vm.WithConsole(stdout), vm.WithLog(stderr))
	status, err := vm.Run(ctx, l, opts...)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C or SIGTERM: the VM is stopped; exit as a shell reports an interrupt.
		fmt.Fprintln(stderr, "uni: stopped the VM")
		return exitError{130}
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return exitError{status}
	}
	return nil
}

// runnableLayout returns an image layout for target: target itself when it
// is one, else a build of it into a temporary directory (removed by cleanup).
func runnableLayout(ctx context.Context, target, file string, bargs map[string]string, disk bool, log io.Writer) (string, func(), error) {
	nothing := func() {}
	fi, err := os.Stat(target)
	if err != nil {
		return "", nothing, fmt.Errorf("%s: %w", target, err)
	}
	if fi.IsDir() && file == "" {
		if _, err := os.Stat(filepath.Join(target, spec.ConfigFile)); err == nil {
			return target, nothing, nil
		}
	}
	req := engine.Request{ContextDir: target, Unifile: file, BuildArgs: bargs, Disk: disk, Log: log}
	if !fi.IsDir() {
		// A program: build it with the Unifile `uni init` would write.
		text, err := programUnifile(target, nil)
		if err != nil {
			return "", nothing, err
		}
		tmp, err := os.MkdirTemp("", "uni-run-")
		if err != nil {
			return "", nothing, err
		}
		defer os.RemoveAll(tmp)
		req.ContextDir = filepath.Dir(target)
		req.Unifile = filepath.Join(tmp, unifile.DefaultFilename)
		if err := os.WriteFile(req.Unifile, []byte(text), 0o644); err != nil {
			return "", nothing, err
		}
	} else if file == "" {
		if _, err := os.Stat(filepath.Join(target, unifile.DefaultFilename)); err != nil {
			return "", nothing, fmt.Errorf("%s holds neither an image (config.json) nor a Unifile", target)
		}
	}
	out, err := os.MkdirTemp("", "uni-image-")
	if err != nil {
		return "", nothing, err
	}
	cleanup := func() { os.RemoveAll(out) }
	req.OutDir = filepath.Join(out, "image")
	if _, err := engine.Build(ctx, req); err != nil {
		cleanup()
		return "", nothing, err
	}
	return req.OutDir, cleanup, nil
}

// resolveBundle finds a kernel bundle by digest in the cache, for writing
// a missing disk.img.
func resolveBundle(ctx context.Context, digest string) (*kernel.Bundle, error) {
	cache, err := cachedir.Dir()
	if err != nil {
		return nil, err
	}
	return kernel.Resolve(ctx, digest, kernel.WithCacheDir(filepath.Join(cache, cachedir.Kernels)))
}
