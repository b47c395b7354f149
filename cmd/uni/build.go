package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

type buildFlags struct {
	file, out   string
	disk, quiet bool
	buildArgs   []string
}

func newBuildCmd() *cobra.Command {
	var o buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] [CONTEXT]",
		Short: "Build a Unifile into an image layout",
		Long: `Build the Unifile (default CONTEXT/Unifile) with CONTEXT (default .) as the
build context, and write the image layout (kernel, initrd, rootfs.img,
config.json, and with --disk disk.img) to the output directory.

The output directory is replaced only if it is empty or holds an earlier
image layout; never the build context, a directory that contains it, the
working directory, $HOME or /.`,
		Example: `  uni build -o out example/hello-node
  uni build . -o out --build-arg VERSION=1.2 --disk`,
		Args: atMostOneArg("CONTEXT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctxDir := "."
			if len(args) == 1 {
				ctxDir = args[0]
			}
			return runBuild(cmd, o, ctxDir)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "the Unifile (default CONTEXT/Unifile)")
	f.StringVarP(&o.out, "output", "o", "out", "output directory for the image layout")
	f.BoolVar(&o.disk, "disk", false, "also write disk.img, bootable under UEFI and BIOS")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "set a build-time variable (KEY=VALUE, or KEY to take it from the environment), repeatable")
	cmd.MarkFlagFilename("file")
	cmd.MarkFlagDirname("output")
	return cmd
}

func runBuild(cmd *cobra.Command, o buildFlags, ctxDir string) error {
	stderr := cmd.ErrOrStderr()
	req := engine.Request{ContextDir: ctxDir, Unifile: o.file, OutDir: o.out, Disk: o.disk, Log: stderr}
	if o.quiet {
		req.Log = io.Discard
	}
	req.KernelOptions = registryKernels(req.Log)
	var err error
	if req.BuildArgs, err = buildArgs(o.buildArgs, os.Getenv); err != nil {
		return usageError{cmd, err}
	}
	res, err := engine.Build(cmd.Context(), req)
	if err != nil {
		return err
	}
	if !o.quiet {
		printLayout(stderr, o.out, res.Config)
	}
	return nil
}

// printLayout lists what a build wrote, with sizes.
func printLayout(w io.Writer, dir string, cfg *spec.ImageConfig) {
	fmt.Fprintf(w, "==> %s  (kernel %s, %s)\n", dir, cfg.Kernel.Release, cfg.Entrypoint[0])
	for _, f := range []string{spec.KernelFile, spec.InitrdFile, spec.RootfsFile, spec.ConfigFile, spec.DiskFile, spec.SBOMFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			fmt.Fprintf(w, "    %-14s %10d bytes\n", f, fi.Size())
		}
	}
}
