package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

func cmdKernel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cache, err := cachedir.Dir()
	if err != nil {
		return err
	}
	opts := []kernel.Option{kernel.WithCacheDir(filepath.Join(cache, cachedir.Kernels))}
	switch args[0] {
	case "ls", "list":
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
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tRELEASE\tVERSION\tMODULES\tDIGEST\tALIASES")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%v\n", d.Name, d.Release, d.Version, d.Modules, short(d.Digest), names[d.Digest])
		}
		return tw.Flush()
	case "import":
		fs := newFlagSet("kernel import", stderr)
		name := fs.String("name", "", "an alias to give the bundle (e.g. linux)")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil || len(pos) != 1 {
			return errUsage
		}
		if *name != "" {
			opts = append(opts, kernel.WithName(*name))
		}
		b, err := kernel.Import(ctx, pos[0], opts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s %s\n", b.Desc.Name, b.Desc.Release, b.Desc.Digest)
		return nil
	}
	return fmt.Errorf("unknown kernel command %q (ls, import)", args[0])
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
