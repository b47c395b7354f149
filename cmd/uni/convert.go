package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/image/format"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

type convertFlags struct {
	format   string
	output   string
	compress bool
	name     string
}

func newConvertCmd() *cobra.Command {
	var o convertFlags
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	for _, f := range format.Formats() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, f.Ext, f.Description)
	}
	tw.Flush()
	cmd := &cobra.Command{
		Use:   "convert --format FMT [-o FILE] DISK|LAYOUT-DIR",
		Short: "Convert an image's disk into the format a hypervisor or cloud imports",
		Long: `Convert a raw disk (disk.img) into another disk format. Given an image layout,
convert uses its disk.img, writing it first (as uni build --disk would) when the
layout has none. The output is written under a temporary name and renamed when
complete; the same input gives the same bytes. Formats:

` + table.String() + `
--compress deflates qcow2's clusters; vmdk, ova and gce are always compressed.
The output defaults to the input's name with the format's extension
(out/ → out.vmdk, disk.img → disk.vmdk). See docs/formats.md.`,
		Example: `  uni convert --format vmdk out
  uni convert --format qcow2 --compress -o app.qcow2 out/disk.img
  uni convert --format gce -o app.tar.gz out`,
		Args: oneArg("DISK|LAYOUT-DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConvert(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "", "output format: "+strings.Join(format.Names(), ", "))
	f.StringVarP(&o.output, "output", "o", "", "output file (default: the input's name with the format's extension)")
	f.BoolVar(&o.compress, "compress", false, "compress the data (qcow2)")
	f.StringVar(&o.name, "name", "", "virtual machine name inside an ova (default: the output's name)")
	cmd.MarkFlagRequired("format")
	cmd.RegisterFlagCompletionFunc("format", fixedChoices(format.Names()...))
	return cmd
}

func runConvert(cmd *cobra.Command, o convertFlags, target string) error {
	ctx := cmd.Context()
	fm, err := format.Lookup(o.format)
	if err != nil {
		return usageError{cmd, fmt.Errorf("--format: %w", err)}
	}
	if o.compress && fm.Compression == format.CompressNo {
		return usageErrorf(cmd, "--compress: format %s is not compressed", fm.Name)
	}
	opts := format.Options{Compress: o.compress, Name: o.name}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds", v)
		}
		opts.SourceDateEpoch = n
	}
	st, err := os.Stat(target)
	if err != nil {
		return err
	}
	diskPath := target
	base := strings.TrimSuffix(filepath.Clean(target), filepath.Ext(target))
	if st.IsDir() {
		l, err := layout.Open(target)
		if err != nil {
			return err
		}
		if err := image.EnsureDisk(ctx, l, resolveBundle); err != nil {
			return err
		}
		cfg := l.Config()
		diskPath = l.Path(spec.DiskFile)
		if base, err = filepath.Abs(target); err != nil { // "." has no name of its own
			return err
		}
		opts.CPUs, opts.MemoryMiB = cfg.CPUs, cfg.MemoryBytes>>20
		if os.Getenv("SOURCE_DATE_EPOCH") == "" {
			opts.SourceDateEpoch = cfg.Build.SourceDateEpoch
		}
	}
	out := o.output
	if out == "" {
		out = base + fm.Ext
	}
	if fm.Name == "ova" && opts.Name == "" {
		opts.Name = strings.TrimSuffix(filepath.Base(out), fm.Ext)
	}
	if same(out, diskPath) {
		return fmt.Errorf("output %s is the input disk", out)
	}
	if err := fm.ConvertFile(ctx, diskPath, out, opts); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s\n", out)
	return nil
}

// same reports whether the paths name the same existing file.
func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
