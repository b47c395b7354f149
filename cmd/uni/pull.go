package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/oci"
)

func newPullCmd() *cobra.Command {
	var insecure bool
	var out, platform string
	cmd := &cobra.Command{
		Use:   "pull [flags] REF",
		Short: "Pull an image from a registry into an image layout",
		Long: `Pull the unikernel artifact REF into the image layout directory -o (default:
the last part of the repository's name). Every blob's digest and size are
checked before anything is renamed into place, and the result is verified;
the directory is replaced only if it is empty or an earlier image layout.
Blobs pulled before come from the local content store in uni's cache.`,
		Example: `  uni pull -o hello registry.example.com/apps/hello:1.0
  uni pull --platform linux/amd64 127.0.0.1:5000/hello:latest`,
		Args: oneArg("REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := out
			if dir == "" {
				d, err := oci.DefaultDir(args[0])
				if err != nil {
					return usageError{cmd, err}
				}
				dir = d
			}
			p, err := oci.Pull(cmd.Context(), args[0], dir,
				oci.WithInsecure(insecure), oci.WithPlatform(platform), oci.WithProgress(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", p.Dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "the image layout directory to write")
	f.StringVar(&platform, "platform", oci.PlatformOS+"/"+oci.PlatformArch, "the platform to take from an index (os/arch)")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on loopback")
	cmd.MarkFlagDirname("output")
	return cmd
}
