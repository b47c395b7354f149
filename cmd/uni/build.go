package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func cmdBuild(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("build", stderr)
	file := fs.String("f", "", "the Unifile (default CONTEXT/Unifile)")
	out := fs.String("o", "out", "output directory for the image layout")
	disk := fs.Bool("disk", false, "also write disk.img, bootable under UEFI and BIOS")
	quiet := fs.Bool("q", false, "print nothing but errors")
	var bargs listFlag
	fs.Var(&bargs, "build-arg", "set a build-time variable (KEY=VALUE), repeatable")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return errUsage
	}
	if len(pos) > 1 {
		return fmt.Errorf("build takes one CONTEXT, have %q", pos)
	}
	req := engine.Request{ContextDir: ".", Unifile: *file, OutDir: *out, Disk: *disk, Log: stderr}
	if len(pos) == 1 {
		req.ContextDir = pos[0]
	}
	if *quiet {
		req.Log = io.Discard
	}
	if req.BuildArgs, err = buildArgs(bargs, os.Getenv); err != nil {
		return err
	}
	res, err := engine.Build(ctx, req)
	if err != nil {
		return err
	}
	if !*quiet {
		printLayout(stderr, *out, res.Config)
	}
	return nil
}

// printLayout lists what a build wrote, with sizes.
func printLayout(w io.Writer, dir string, cfg *spec.ImageConfig) {
	fmt.Fprintf(w, "==> %s  (kernel %s, %s)\n", dir, cfg.Kernel.Release, cfg.Entrypoint[0])
	for _, f := range []string{spec.KernelFile, spec.InitrdFile, spec.RootfsFile, spec.ConfigFile, spec.DiskFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			fmt.Fprintf(w, "    %-12s %10d bytes\n", f, fi.Size())
		}
	}
}
