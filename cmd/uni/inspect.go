package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func newInspectCmd() *cobra.Command {
	var asJSON, insecure bool
	cmd := &cobra.Command{
		Use:   "inspect [flags] REF|DIR",
		Short: "Show an image's files, digests, entrypoint, kernel and ports",
		Long: `Show what an image holds: its files with sizes and digests, its entrypoint,
kernel and ports. DIR is an image layout (the manifest shown is the one uni
push would write); anything else is a reference, of which only the manifest
and config.json are fetched. --json prints the manifest and config.json.`,
		Example: `  uni inspect out
  uni inspect --json 127.0.0.1:5000/hello:latest`,
		Args: oneArg("REF|DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, args[0], asJSON, insecure)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest and config.json as JSON")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on loopback")
	return cmd
}

func runInspect(cmd *cobra.Command, target string, asJSON, insecure bool) error {
	ctx := cmd.Context()
	var manifest, config []byte
	var digest string
	var files []oci.Blob
	sbomLine := "" // a layout's; a registry's is a referrer, which uni sbom REF reads
	if _, err := os.Stat(target); err == nil || !errors.Is(err, fs.ErrNotExist) {
		l, err := layout.Open(target)
		if err != nil {
			return err
		}
		lf, err := l.Files(ctx)
		if err != nil {
			return err
		}
		// sbom.spdx.json is no blob of the image: it is pushed as a
		// referrer, and shown on a line of its own.
		var sbomFile *layout.File
		if i := slices.IndexFunc(lf, func(f layout.File) bool { return f.Name == spec.SBOMFile }); i >= 0 {
			sbomFile = &lf[i]
			lf = slices.Delete(slices.Clone(lf), i, i+1)
		}
		a, err := oci.NewArtifact(l.Config(), lf, l.HasDisk())
		if err != nil {
			return err
		}
		if config, err = os.ReadFile(l.Path(spec.ConfigFile)); err != nil {
			return err
		}
		manifest, digest, files = a.Manifest, a.ManifestDesc.Digest.String(), a.Blobs
		sbomLine = layoutSBOM(ctx, l, sbomFile)
	} else {
		res, err := oci.Resolve(ctx, target, oci.WithInsecure(insecure))
		if err != nil {
			return err
		}
		if res.ImageForm {
			return fmt.Errorf("%s is a container image (the image form of docker buildx): uni pull it, then uni inspect the directory", target)
		}
		if config, err = oci.ReadConfig(ctx, res, oci.WithInsecure(insecure)); err != nil {
			return err
		}
		manifest, digest, files = res.ManifestRaw, res.ManifestDigest.String(), res.Files
	}
	cfg, err := layout.ParseConfig(config)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		b, err := json.MarshalIndent(struct {
			Manifest json.RawMessage `json:"manifest"`
			Config   json.RawMessage `json:"config"`
		}{manifest, config}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	return printInspect(out, target, digest, files, cfg, sbomLine)
}

// layoutSBOM says what a layout's sbom.spdx.json (f, nil without one)
// is: the document of this image, or not (a description of another
// rootfs.img is shown, not refused: inspect reports; uni sbom, run and
// push refuse it).
func layoutSBOM(ctx context.Context, l *layout.Layout, f *layout.File) string {
	if f == nil {
		return "none"
	}
	what := fmt.Sprintf("%s %s %s", f.Name, progress.Bytes(f.Size), f.Digest)
	if err := l.VerifySBOM(ctx); err != nil {
		return what + ", which does not describe this image: " + err.Error()
	}
	return what + ", describing this rootfs.img"
}

func printInspect(w io.Writer, target, digest string, files []oci.Blob, cfg *spec.ImageConfig, sbomLine string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "image\t%s\n", printable(target))
	fmt.Fprintf(tw, "manifest\t%s\n", digest)
	entry, _ := json.Marshal(cfg.Entrypoint)
	fmt.Fprintf(tw, "entrypoint\t%s\n", printable(string(entry)))
	fmt.Fprintf(tw, "kernel\t%s %s (%s)\n", printable(cfg.Kernel.Name), printable(cfg.Kernel.Release), cfg.Kernel.Digest)
	var ports []string
	for _, p := range cfg.ExposedPorts {
		ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	if len(ports) == 0 {
		ports = []string{"none"}
	}
	fmt.Fprintf(tw, "ports\t%s\n", strings.Join(ports, " "))
	fmt.Fprintf(tw, "memory\t%s, %d CPU(s)\n", progress.Bytes(cfg.MemoryBytes), cfg.CPUs)
	if sbomLine != "" {
		// Not a blob of the image: pushed as a referrer of it.
		fmt.Fprintf(tw, "sbom\t%s\n", printable(sbomLine))
	}
	fmt.Fprintf(tw, "\nFILE\tSIZE\tDIGEST\n")
	for _, f := range files {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, progress.Bytes(f.Desc.Size), f.Desc.Digest)
	}
	return tw.Flush()
}
