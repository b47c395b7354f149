// Command frontend-image builds and pushes the BuildKit frontend's image
// without Docker (`make frontend-image REGISTRY=host:port` runs it):
//
//  1. it resolves the default kernel bundle (linux) as uni build does,
//     from the cache, or imported from the distribution's kernel;
//  2. pushes it as REGISTRY/uniforge/kernel:<release>;
//  3. builds the frontend image of the static binary, with frontend.json
//     naming that bundle pinned by digest, and pushes it as
//     REGISTRY/uniforge/unifile:TAG.
//
// It prints both references with their digests, one a line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/frontendimage"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/oci"
	"github.com/uniforge/packer-plugin-unikernel/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "frontend-image:", err)
		os.Exit(1)
	}
}

// run is the command, given its arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("frontend-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registry := fs.String("registry", "", "the registry to push to, host:port (required)")
	binary := fs.String("binary", "", "the static frontend program (required)")
	kernelName := fs.String("kernel", kernel.DefaultName, "the kernel bundle to push as the default: a name, digest or reference KERNEL accepts")
	tag := fs.String("tag", "dev", "the frontend image's tag")
	version := fs.String("version", version.Version(), "the version frontend.json records")
	insecure := fs.Bool("insecure", false, "allow plain HTTP to a registry that is not on loopback")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *registry == "" || *binary == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("give -registry host:port and -binary FILE, and nothing else")
	}
	epoch, err := engine.SourceDateEpoch(nil)
	if err != nil {
		return err
	}
	cache, err := cachedir.Dir()
	if err != nil {
		return err
	}
	ociOpts := []oci.Option{oci.WithInsecure(*insecure), oci.WithProgress(stderr)}
	b, err := kernel.Resolve(ctx, *kernelName, kernel.WithCacheDir(filepath.Join(cache, cachedir.Kernels)),
		kernel.WithProgress(stderr), kernel.WithFetcher(oci.KernelFetcher(ociOpts...)))
	if err != nil {
		return err
	}
	kp, err := oci.PushKernelBundle(ctx, b, *registry+"/uniforge/kernel:"+b.Desc.Release, append(ociOpts, oci.WithSourceDateEpoch(epoch))...)
	if err != nil {
		return err
	}
	info := frontendimage.Info{DefaultKernel: kp.Ref + "@" + kp.Manifest.String(), Version: *version}
	img, err := frontendimage.Build(*binary, info)
	if err != nil {
		return err
	}
	ref := *registry + "/uniforge/unifile:" + *tag
	digest, err := oci.PushImage(ctx, img, ref, ociOpts...)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, info.DefaultKernel)
	fmt.Fprintf(stdout, "%s@%s\n", ref, digest)
	return nil
}
