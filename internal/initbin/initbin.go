// Package initbin carries the guest init (package ../../init) as a static
// binary committed beside this file, so that `go build`, `go install` and
// `go vet` work on a fresh clone with no make step, and uni is one binary
// that needs no Go toolchain at run time.
//
// uni-init is a reproducible build (`make init`: CGO off, -trimpath, no
// build id) with the Go release named in uni-init.go-version; the test
// TestEmbeddedInitIsFresh rebuilds it and fails when the committed bytes
// are stale.
package initbin

import _ "embed"

//go:embed uni-init
var binary []byte

//go:embed uni-init.go-version
var goVersion string

// Binary returns the static init program that runs as PID 1 in every image.
func Binary() []byte { return binary }

// GoVersion is the Go release the committed init was built with.
func GoVersion() string { return goVersion }
