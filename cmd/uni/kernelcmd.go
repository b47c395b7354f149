package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

func newKernelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "kernel COMMAND",
		Short:                      "List and import kernel bundles",
		Args:                       subcommandArgs,
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf(cmd, "kernel needs a command: ls or import")
		},
	}
	cmd.AddCommand(newKernelLsCmd(), newKernelImportCmd())
	return cmd
}

func newKernelLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the kernel bundles in the cache, with their aliases",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := kernelCache()
			if err != nil {
				return err
			}
			ds, err := kernel.List(opts...)
			if err != nil {
				return err
			}
			aliases, err := kernel.Aliases(opts...)
			if err != nil {
				return err
			}
			names := map[string][]string{}
			for a, d := range aliases {
				names[d] = append(names[d], a)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tRELEASE\tVERSION\tMODULES\tDIGEST\tALIASES")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%v\n", d.Name, d.Release, d.Version, d.Modules, short(d.Digest), names[d.Digest])
			}
			return tw.Flush()
		},
	}
}

func newKernelImportCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "import [flags] SRC",
		Short: "Make a kernel bundle of a kernel package (.deb) or a directory",
		Long: `Make a kernel bundle of a kernel package (.deb), or of a directory holding a
kernel image and its lib/modules/<release>/, and put it in the cache.`,
		Args: oneArg("SRC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := kernelCache()
			if err != nil {
				return err
			}
			if name != "" {
				opts = append(opts, kernel.WithName(name))
			}
			b, err := kernel.Import(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", b.Desc.Name, b.Desc.Release, b.Desc.Digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "an alias to give the bundle (e.g. linux)")
	return cmd
}

// kernelCache is the option that points package kernel at uni's cache.
func kernelCache() ([]kernel.Option, error) {
	cache, err := cachedir.Dir()
	if err != nil {
		return nil, err
	}
	return []kernel.Option{kernel.WithCacheDir(filepath.Join(cache, cachedir.Kernels))}, nil
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
