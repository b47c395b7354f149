package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/frontend"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

type buildFlags struct {
	file, out   string
	disk, quiet bool
	buildArgs   []string
	// --builder: a BuildKit daemon runs the stages (RUN included).
	builder, target, progress string
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
working directory, $HOME or /.

With --builder, a BuildKit daemon runs the Unifile's stages (RUN, cache
mounts and secrets included) and sends back the last stage's root; uni
then cuts and assembles the unikernel here, on this machine's kernel
bundles, with the same bytes as a build without it.`,
		Example: `  uni build -o out example/hello-node
  uni build . -o out --build-arg VERSION=1.2 --disk
  uni build --builder tcp://buildkitd:1234 -o out .
  uni build --builder docker-container://buildx_buildkit_default0 -o out .`,
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
	f.StringVar(&o.builder, "builder", "", "send the build to this BuildKit daemon (tcp://HOST:PORT, unix:///PATH, docker-container://NAME, kube-pod://POD, ssh://HOST)")
	f.StringVar(&o.target, "target", "", "with --builder: the stage that becomes the unikernel (default: the last)")
	f.StringVar(&o.progress, "progress", "auto", "with --builder: BuildKit's progress display (auto, plain, tty, quiet)")
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
	var res *engine.Result
	switch {
	case o.builder != "":
		d := frontend.Daemon{Addr: o.builder, Target: o.target, Progress: stderr, ProgressMode: o.progress}
		if o.quiet {
			d.Progress = nil
		}
		res, err = frontend.BuildOnDaemon(cmd.Context(), d, req)
	case o.target != "":
		return usageError{cmd, errors.New("--target needs --builder: without a daemon the last stage is the unikernel")}
	default:
		res, err = engine.Build(cmd.Context(), req)
	}
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
