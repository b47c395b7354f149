package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/uniforge/packer-plugin-unikernel/version"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print uni's version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "uni", version.Version())
			return err
		},
	}
}
