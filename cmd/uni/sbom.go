package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func newSBOMCmd() *cobra.Command {
	var summary, insecure bool
	cmd := &cobra.Command{
		Use:   "sbom DIR|REF",
		Short: "Print the SPDX 2.3 SBOM of an image layout: every file of rootfs.img and where it came from",
		Long: `Print sbom.spdx.json of the image layout DIR, the SPDX 2.3 document every build
writes: each regular file of rootfs.img with its SHA1 and SHA256 and its origin
(a base image's layer, a host path, the build context, the Unifile, uni; under
BuildKit the last stage or its base), and the kernel bundle. The SBOM describes
the image rather than being one of its files: it is checked to name this
layout's rootfs.img (its namespace ends with config.json's rootfs.digest).
For a REF in a registry, the SBOM attached to the pushed image (a referrer) is
fetched and checked against its digest and the image's rootfs.img. --summary
prints a table instead: files and bytes per origin.`,
		Example: `  uni sbom out
  uni sbom --summary out
  uni sbom registry.example/apps/hello:1`,
		Args: oneArg("image layout directory or registry reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); errors.Is(err, fs.ErrNotExist) && oci.IsRemoteRef(args[0]) {
				doc, err := oci.FetchSBOM(cmd.Context(), args[0], oci.WithInsecure(insecure))
				if err != nil {
					return err
				}
				return printSBOM(cmd.OutOrStdout(), bytes.NewReader(doc), summary)
			}
			return runSBOM(cmd, args[0], summary)
		},
	}
	cmd.Flags().BoolVar(&summary, "summary", false, "print files and bytes per origin instead of the document")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on loopback")
	return cmd
}

func runSBOM(cmd *cobra.Command, dir string, summary bool) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such directory (a registry reference names its registry host: registry.example/app:1)", dir)
	}
	l, err := layout.Open(dir)
	if err != nil {
		return err
	}
	if err := l.VerifySBOM(cmd.Context()); err != nil {
		return err
	}
	f, err := os.Open(l.Path(spec.SBOMFile))
	if err != nil {
		return err
	}
	defer f.Close()
	return printSBOM(cmd.OutOrStdout(), f, summary)
}

// printSBOM copies the document to w as it is, or prints its summary.
func printSBOM(w io.Writer, r io.Reader, summary bool) error {
	if !summary {
		_, err := io.Copy(w, r)
		return err
	}
	doc, err := sbom.Read(r)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FILES\tBYTES\t  ORIGIN")
	files, total := 0, int64(0)
	for _, r := range sbom.Summarize(doc) {
		fmt.Fprintf(tw, "%d\t%d\t  %s\n", r.Files, r.Bytes, r.Origin)
		files += r.Files
		total += r.Bytes
	}
	fmt.Fprintf(tw, "%d\t%d\t  total\n", files, total)
	return tw.Flush()
}
