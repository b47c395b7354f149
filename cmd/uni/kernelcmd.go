package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/kernel/kbuild"
	"github.com/uniforge/packer-plugin-unikernel/oci"
)

func newKernelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "kernel COMMAND",
		Short:                      "List, import, build and push kernel bundles",
		Args:                       subcommandArgs,
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf(cmd, "kernel needs a command: ls, import, build or push")
		},
	}
	cmd.AddCommand(newKernelLsCmd(), newKernelImportCmd(), newKernelBuildCmd(), newKernelPushCmd())
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

func newKernelBuildCmd() *cobra.Command {
	var spec kbuild.Spec
	cmd := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build a kernel bundle from source (linux-mini)",
		Long: `Build a kernel bundle from Debian's linux-source package (or a .deb of it,
or a kernel source directory): tinyconfig plus uni's configuration fragments
(kernel/configs: virtio, NVMe, the clouds' NICs and disks, squashfs, ext4,
the EFI stub, the PVH entry, no modules) plus yours, built reproducibly, and
put it in the cache under --name. The same inputs (source, fragments,
compiler) build once: a second run takes the bundle from the cache. A
configuration without what uni's init needs is refused before compiling.

Building takes about 10 minutes on 2 CPUs. KERNEL linux-mini in a Unifile
builds it on first use, as this command does with no flags.`,
		Example: `  uni kernel build
  uni kernel build --name mini-ipv6 --config ipv6.config
  uni kernel build --source linux-source-6.12 --name linux-mini-6.12`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := kernelCache()
			if err != nil {
				return err
			}
			spec.Log = cmd.ErrOrStderr()
			b, err := kbuild.Build(cmd.Context(), spec, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", spec.Name, b.Desc.Release, b.Desc.Digest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Name, "name", kbuild.DefaultName, "the alias to give the bundle (KERNEL NAME)")
	f.StringArrayVar(&spec.Fragments, "config", nil, "a configuration fragment merged after uni's (repeatable; a later line wins)")
	f.StringVar(&spec.Source, "source", kbuild.DefaultSource, "a linux-source-* package name, a .deb of one, or a kernel source directory")
	f.IntVarP(&spec.Jobs, "jobs", "j", 0, "parallel compile jobs (default: the number of CPUs)")
	f.IntVar(&spec.Nice, "nice", 0, "run the compilers under nice(1) with this increment, to leave the machine to other work")
	return cmd
}

func newKernelPushCmd() *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "push [flags] NAME|DIGEST REF",
		Short: "Publish a kernel bundle to a registry as an OCI image",
		Long: `Publish the kernel bundle NAME (an alias such as linux, a digest, or anything
KERNEL accepts) as REF (a tag): an ordinary OCI image whose one layer holds
the bundle's files at its root, so that KERNEL REF in a Unifile, uni build on
another machine and BuildKit can all use it. The same bundle always gives the
same image (file times are SOURCE_DATE_EPOCH, default 0). linux is made from
the distribution's kernel first if the cache lacks it, as uni build does.
Prints REF@DIGEST.

Credentials come from your docker config and its credential helpers. Plain
HTTP is used only for loopback registries unless --insecure.`,
		Example: `  uni kernel push linux registry.example.com/uniforge/kernel:6.1.0-40-cloud-amd64
  uni kernel push sha256:3f2a… 127.0.0.1:5000/kernels/mine:1`,
		Args: twoArgs("NAME|DIGEST", "REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
			epoch, err := engine.SourceDateEpoch(nil)
			if err != nil {
				return err
			}
			opts, err := kernelCache()
			if err != nil {
				return err
			}
			ociOpts := []oci.Option{oci.WithInsecure(insecure), oci.WithProgress(stderr)}
			opts = append(opts, kernel.WithProgress(stderr), kernel.WithFetcher(oci.KernelFetcher(ociOpts...)))
			b, err := kernel.Resolve(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			p, err := oci.PushKernelBundle(ctx, b, args[1], append(ociOpts, oci.WithSourceDateEpoch(epoch))...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", p.Ref, p.Manifest)
			return nil
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on loopback")
	return cmd
}

// registryKernels are the kernel options of a build: KERNEL may name a
// bundle image in a registry, fetched once into the cache.
// KERNEL linux-mini is built from source on first use.
func registryKernels(log io.Writer) []kernel.Option {
	return []kernel.Option{kernel.WithFetcher(oci.KernelFetcher(oci.WithProgress(log))), kernel.WithBuilder(kbuild.Builder(log))}
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
