// Package bkcompat holds the test that proves the Unifile means what
// BuildKit's Dockerfile frontend says it means: the same files go through
// unifile.Parse and through dockerfile2llb.Dockerfile2LLB (no daemon, base
// image configs from a stub), and the image configs must agree.
// The BuildKit frontend (package frontend) checks the same agreement on
// every build and warns where the two readings differ.
package bkcompat
