// Command uni builds unikernels the way you build containers: a Unifile (a
// Dockerfile whose last stage becomes a unikernel) into a kernel-plus-app
// image, and boots it under QEMU. This package holds the commands' flags
// and wiring only (one file per command, on cobra); the work is in the
// packages it calls.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/uniforge/packer-plugin-unikernel/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the command winds down; a second one
		// kills uni at once, as it would any program.
		<-ctx.Done()
		stop()
	}()
	status := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}

// execute runs the command line args and returns uni's exit status: 0, the
// app's status for run, 1 for an error, 2 for a usage error, 130 when a
// signal stopped the command.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitStatus(ctx, err, stderr)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "uni",
		Short: "uni builds unikernels the way you build containers",
		Long: `uni builds unikernels the way you build containers: a Unifile (a Dockerfile
whose last stage becomes a unikernel) into an image layout (kernel, initrd,
rootfs.img, config.json), which uni run boots in QEMU.`,
		Example: `  uni build -o out example/hello-node
  uni run out
  uni run -p 8083:8083 hi.js
  uni init hi.js`,
		Version:                    version.Version(),
		SuggestionsMinimumDistance: 2,
		SilenceErrors:              true,
		SilenceUsage:               true,
		Args:                       subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			cmd.Usage()
			return usageErrorf(cmd, "no command given")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("uni {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(newBuildCmd(), newRunCmd(), newInitCmd(), newKernelCmd(), newVersionCmd())
	root.AddCommand(newPushCmd(), newPullCmd(), newInspectCmd(), newSBOMCmd(), newConvertCmd())
	return root
}
