// Command uni builds unikernels the way you build containers: a Unifile (a
// Dockerfile whose last stage becomes a unikernel) into a kernel-plus-app
// image, and boots it under QEMU. This file holds the flags and the wiring
// only; the work is in the packages it calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `uni builds unikernels the way you build containers.

Usage:
  uni build [-f Unifile] [-o DIR] [--build-arg K=V]... [--disk] [CONTEXT]
  uni run   [-p [IP:]HOST:GUEST]... [--memory SIZE] [--cpus N] [--boot direct|uefi|bios]
            [--accel auto|kvm|tcg] TARGET
  uni init  [-o FILE] [-p PORT] PROGRAM     write the Unifile that 'uni run PROGRAM' uses
  uni kernel ls | import SRC [--name NAME]
  uni version

TARGET is an image directory (from uni build), a build context holding a
Unifile, or a program: a script (.js, .py, #!) run by the interpreter on
your PATH, or an ELF binary.
`

// exitError carries an exit status out of a command (the app's, for run).
type exitError struct{ status int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.status) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.status)
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "uni:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "build":
		return cmdBuild(ctx, args[1:], stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "init":
		return cmdInit(args[1:], stdout, stderr)
	case "kernel":
		return cmdKernel(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "uni", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (try: uni help)", args[0])
}
