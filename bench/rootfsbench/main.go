// Command rootfsbench writes a host directory as a squashfs image with
// uni's writer, for bench/rootfs.sh to time against mksquashfs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/uniforge/packer-plugin-unikernel/image/squashfs"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

func main() {
	level := flag.Int("level", squashfs.DefaultCompressionLevel, "zstd level")
	block := flag.Int("block", squashfs.DefaultBlockSize, "block size in bytes")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: rootfsbench [-level N] [-block BYTES] DIR OUT")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), squashfs.WithCompressionLevel(*level), squashfs.WithBlockSize(*block)); err != nil {
		fmt.Fprintln(os.Stderr, "rootfsbench:", err)
		os.Exit(1)
	}
}

func run(dir, out string, opts ...squashfs.Option) error {
	t := rootfs.NewTree()
	if err := t.AddHostDir(dir, "/"); err != nil {
		return err
	}
	return squashfs.WriteFile(context.Background(), out, t, opts...)
}
