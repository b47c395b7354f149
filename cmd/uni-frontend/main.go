// Command uni-frontend is uni's BuildKit frontend (docs/buildkit.md). Run
// by BuildKit's gateway as the frontend image's entrypoint, it converts a
// Unifile to LLB; run as `uni-frontend assemble REQUEST` it is the
// assembly step of that LLB, inside the same image.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	"github.com/moby/buildkit/util/appcontext"

	"github.com/uniforge/packer-plugin-unikernel/frontend"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "assemble" {
		os.Exit(assemble(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "verify-kernel" {
		os.Exit(verifyKernel(os.Args[2:]))
	}
	if err := grpcclient.RunFromEnvironment(appcontext.Context(), frontend.Build); err != nil {
		fmt.Fprintln(os.Stderr, "uni-frontend:", err)
		os.Exit(1)
	}
}

func assemble(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: uni-frontend assemble REQUEST.json")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := frontend.MountDirs
	d.Request = args[0]
	d.Log = os.Stdout
	if err := frontend.Assemble(ctx, d); err != nil {
		fmt.Fprintln(os.Stderr, "uni-frontend assemble:", err)
		return 1
	}
	return 0
}

func verifyKernel(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: uni-frontend verify-kernel BUNDLE-DIR OUT-DIR")
		return 2
	}
	if err := frontend.VerifyKernel(args[0], args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "uni-frontend verify-kernel:", err)
		return 1
	}
	return 0
}
