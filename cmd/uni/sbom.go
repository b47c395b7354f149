package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func newSBOMCmd() *cobra.Command {
	var summary bool
	cmd := &cobra.Command{
		Use:   "sbom DIR",
		Short: "Print the SPDX 2.3 SBOM of an image layout: every file of rootfs.img and where it came from",
		Long: `Print sbom.spdx.json of the image layout DIR, the SPDX 2.3 document every build
writes: each regular file of rootfs.img with its SHA1 and SHA256 and its origin
(a base image's layer, a host path, the build context, the Unifile, uni), and
the kernel bundle. The file is checked against the digest config.json records.
--summary prints a table instead: files and bytes per origin.`,
		Example: `  uni sbom out
  uni sbom --summary out`,
		Args: oneArg("image layout directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSBOM(cmd, args[0], summary)
		},
	}
	cmd.Flags().BoolVar(&summary, "summary", false, "print files and bytes per origin instead of the document")
	return cmd
}

func runSBOM(cmd *cobra.Command, dir string, summary bool) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such directory; to read the SBOM of an image in a registry, pull it first (uni pull REF -o DIR), then run uni sbom DIR", dir)
	}
	l, err := layout.Open(dir)
	if err != nil {
		return err
	}
	if err := l.VerifySBOM(cmd.Context()); err != nil {
		return err
	}
	p := l.Path(spec.SBOMFile)
	if !summary {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(cmd.OutOrStdout(), f)
		return err
	}
	doc, err := sbom.ReadFile(p)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FILES\tBYTES\t  ORIGIN")
	files, bytes := 0, int64(0)
	for _, r := range sbom.Summarize(doc) {
		fmt.Fprintf(tw, "%d\t%d\t  %s\n", r.Files, r.Bytes, r.Origin)
		files += r.Files
		bytes += r.Bytes
	}
	fmt.Fprintf(tw, "%d\t%d\t  total\n", files, bytes)
	return tw.Flush()
}
