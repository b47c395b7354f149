package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
	"github.com/uniforge/packer-plugin-unikernel/vm"
)

type runFlags struct {
	ports, buildArgs    []string
	memory, boot, accel string
	file                string
	cpus                int
}

func newRunCmd() *cobra.Command {
	var o runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] TARGET",
		Short: "Boot an image in QEMU, building it first if need be",
		Long: `Boot TARGET in QEMU, stream its console, and exit with the app's exit status.

TARGET is an image directory (from uni build), a registry reference with
an explicit registry (reg.example/app:1; pulled into a temporary directory
when no file of that name exists), a build context holding a
Unifile (or any directory with -f), or a program: a script (.js, .py, #!)
run by the interpreter on your PATH, or an ELF binary. A context or program
is built into a temporary directory, removed afterwards.`,
		Example: `  uni run out
  uni run -p 8080:8080 --memory 256M example/hello-node
  uni run -p 8083:8083 hi.js`,
		Args: oneArg("TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.ports, "publish", "p", nil, "forward a port: [IP:]HOST:GUEST[/udp], repeatable (default: every EXPOSEd port on 127.0.0.1)")
	f.StringVar(&o.memory, "memory", "", "guest RAM, e.g. 256M (default: the image's MEMORY)")
	f.IntVar(&o.cpus, "cpus", 0, "guest CPUs (default: the image's CPUS)")
	f.StringVar(&o.boot, "boot", vm.BootDirect, "boot mode: direct (kernel and initrd given to QEMU), uefi or bios (firmware boots disk.img)")
	f.StringVar(&o.accel, "accel", vm.AccelAuto, "accelerator: auto, kvm or tcg")
	f.StringVarP(&o.file, "file", "f", "", "the Unifile, when TARGET is a build context")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build-time variable when TARGET is built (KEY=VALUE), repeatable")
	cmd.RegisterFlagCompletionFunc("boot", fixedChoices(vm.BootDirect, vm.BootUEFI, vm.BootBIOS))
	cmd.RegisterFlagCompletionFunc("accel", fixedChoices(vm.AccelAuto, vm.AccelKVM, vm.AccelTCG))
	cmd.MarkFlagFilename("file")
	return cmd
}

func runRun(cmd *cobra.Command, o runFlags, target string) error {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	var opts []vm.Option
	for _, p := range o.ports {
		pf, err := vm.ParsePortForward(p)
		if err != nil {
			return fmt.Errorf("-p %s: %w", p, err)
		}
		opts = append(opts, vm.WithPorts(pf))
	}
	if o.memory != "" {
		n, err := unifile.ParseMemory(o.memory)
		if err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		opts = append(opts, vm.WithMemory(n))
	}
	if o.cpus != 0 {
		opts = append(opts, vm.WithCPUs(o.cpus))
	}
	bm, err := buildArgs(o.buildArgs, os.Getenv)
	if err != nil {
		return usageError{cmd, err}
	}
	l, cleanup, err := runnableLayout(ctx, target, o.file, bm, o.boot != vm.BootDirect, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	if o.boot != vm.BootDirect {
		if err := image.EnsureDisk(ctx, l, resolveBundle); err != nil {
			return err
		}
	}
	opts = append(opts, vm.WithBoot(o.boot), vm.WithAccel(o.accel), vm.WithConsole(stdout), vm.WithLog(stderr))
	status, err := vm.Run(ctx, l, opts...)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C or SIGTERM: the VM is stopped; exit as a shell reports an interrupt.
		fmt.Fprintln(stderr, "uni: stopped the VM")
		return exitStatusError{exitInterrupted}
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return exitStatusError{status}
	}
	return nil
}

// runnableLayout returns the verified image layout for target: target
// itself when it is one, else a pull or a build of it into a temporary
// directory (removed by cleanup). A layout uni has just pulled or built is
// verified with the digests it checked while writing it, not hashed again.
func runnableLayout(ctx context.Context, target, file string, bargs map[string]string, disk bool, log io.Writer) (*layout.Layout, func(), error) {
	dir, checked, cleanup, err := layoutDir(ctx, target, file, bargs, disk, log)
	if err != nil {
		return nil, nil, err
	}
	l, err := layout.Open(dir)
	if err == nil {
		err = l.Verify(ctx, layout.WithCheckedFiles(checked))
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return l, cleanup, nil
}

// layoutDir finds, pulls or builds the layout directory for target, and
// says which of its files' digests were checked as they were written.
func layoutDir(ctx context.Context, target, file string, bargs map[string]string, disk bool, log io.Writer) (string, map[string]spec.FileRef, func(), error) {
	nothing := func() {}
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) && file == "" && oci.IsRemoteRef(target) {
		return pulledLayout(ctx, target, log)
	}
	if err != nil {
		return "", nil, nothing, fmt.Errorf("%s: %w", target, err)
	}
	if fi.IsDir() && file == "" {
		if _, err := os.Stat(filepath.Join(target, spec.ConfigFile)); err == nil {
			return target, nil, nothing, nil
		}
	}
	req := engine.Request{ContextDir: target, Unifile: file, BuildArgs: bargs, Disk: disk, Log: log, KernelOptions: registryKernels(log)}
	if !fi.IsDir() {
		// A program: build it with the Unifile `uni init` would write.
		text, err := programUnifile(target, nil)
		if err != nil {
			return "", nil, nothing, err
		}
		tmp, err := os.MkdirTemp("", "uni-run-")
		if err != nil {
			return "", nil, nothing, err
		}
		defer os.RemoveAll(tmp)
		req.ContextDir = filepath.Dir(target)
		req.Unifile = filepath.Join(tmp, unifile.DefaultFilename)
		if err := os.WriteFile(req.Unifile, []byte(text), 0o644); err != nil {
			return "", nil, nothing, err
		}
	} else if file == "" {
		if _, err := os.Stat(filepath.Join(target, unifile.DefaultFilename)); err != nil {
			return "", nil, nothing, fmt.Errorf("%s holds neither an image (config.json) nor a Unifile", target)
		}
	}
	out, err := os.MkdirTemp("", "uni-image-")
	if err != nil {
		return "", nil, nothing, err
	}
	cleanup := func() { os.RemoveAll(out) }
	req.OutDir = filepath.Join(out, "image")
	res, err := engine.Build(ctx, req)
	if err != nil {
		cleanup()
		return "", nil, nothing, err
	}
	return req.OutDir, builtDigests(res.Config), cleanup, nil
}

// builtDigests are the digests the assembler computed from the files it
// had just written, as config.json records them.
func builtDigests(cfg *spec.ImageConfig) map[string]spec.FileRef {
	checked := map[string]spec.FileRef{spec.RootfsFile: {Digest: cfg.Rootfs.Digest, Size: cfg.Rootfs.Size}}
	for name, ref := range map[string]*spec.FileRef{spec.KernelFile: cfg.KernelFile, spec.InitrdFile: cfg.Initrd, spec.DiskFile: cfg.Disk} {
		if ref != nil {
			checked[name] = *ref
		}
	}
	return checked
}

// pulledLayout pulls the image ref into a temporary directory (removed by
// cleanup).
func pulledLayout(ctx context.Context, ref string, log io.Writer) (string, map[string]spec.FileRef, func(), error) {
	tmp, err := os.MkdirTemp("", "uni-pull-")
	if err != nil {
		return "", nil, func() {}, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	p, err := oci.Pull(ctx, ref, filepath.Join(tmp, "image"), oci.WithProgress(log))
	if err != nil {
		cleanup()
		return "", nil, func() {}, err
	}
	return p.Dir, p.Checked, cleanup, nil
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
