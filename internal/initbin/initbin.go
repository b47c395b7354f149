// Package initbin carries the guest init (package ../../init), built static
// by `make` before uni itself, so that uni is one binary that needs no Go
// toolchain at run time.
package initbin

import _ "embed"

//go:embed uni-init
var binary []byte

// Binary returns the static init program that runs as PID 1 in every image.
func Binary() []byte { return binary }
