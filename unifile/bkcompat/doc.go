// Package bkcompat holds the test that proves the Unifile means what
// BuildKit's Dockerfile frontend says it means: the same files go through
// unifile.Parse and through dockerfile2llb.Dockerfile2LLB (no daemon, base
// image configs from a stub), and the image configs must agree.
//
// It is a module of its own so that BuildKit's frontend and its
// dependencies (containerd, gRPC …) stay out of the main module's build
// list: they would raise versions the guest init is built with. Run it
// with `cd unifile/bkcompat && go test ./...` (make test does).
package bkcompat
