// Package vm boots an image layout (package layout) under QEMU: it picks
// the accelerator, forwards ports, streams the serial console and returns
// the app's exit status. It boots only a layout that verified against its
// config.json, and builds QEMU's command line from typed, validated values
// (args.go): nothing read from a layout reaches it as text that QEMU would
// parse as options.
package vm
