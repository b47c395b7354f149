package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
)

func newPushCmd() *cobra.Command {
	var insecure, disk bool
	var mountFrom []string
	cmd := &cobra.Command{
		Use:   "push [flags] DIR REF",
		Short: "Push an image layout to a registry as an OCI artifact",
		Long: `Push the image layout DIR (from uni build) to the registry as REF (a tag),
as the OCI artifact docs/oci-artifact.md describes: one blob per file, titled
with its name, so that oras pull hands back the plain files. The layout is
verified first; blobs the registry has are not sent again; sbom.spdx.json,
when the layout holds one, is attached as a referrer.

Credentials come from your docker config and its credential helpers. Plain
HTTP is used only for loopback registries unless --insecure.`,
		Example: `  uni push out registry.example.com/apps/hello:1.0
  uni push out 127.0.0.1:5000/hello:latest`,
		Args: twoArgs("DIR", "REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := layout.Open(args[0])
			if err != nil {
				return err
			}
			opts := []oci.Option{oci.WithInsecure(insecure), oci.WithDisk(disk), oci.WithMountFrom(mountFrom...), oci.WithProgress(cmd.ErrOrStderr())}
			p, err := oci.Push(ctx, l, args[1], opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", p.Ref, p.Index)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on loopback")
	f.BoolVar(&disk, "disk", false, "also push disk.img")
	f.StringArrayVar(&mountFrom, "mount-from", nil, "a repository of the same registry to mount blobs from (e.g. the kernel), repeatable")
	return cmd
}

// twoArgs accepts exactly two positional arguments, called a and b.
func twoArgs(a, b string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 2 {
			return usageErrorf(cmd, "%s needs %s and %s, have %d arguments: %q", cmd.Name(), a, b, len(args), args)
		}
		return nil
	}
}
