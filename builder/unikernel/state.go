package unikernel

import "github.com/uniforge/packer-plugin-unikernel/layout"

// runState is what the steps of one build hand each other. The SDK's state
// bag carries only what it imposes (ui, hook, error); the steps share this
// typed value instead.
type runState struct {
	// Staging is the directory this build made beside output_directory to
	// build or pull into; the source step removes it when the build ends.
	// Empty for a user's `layout`.
	Staging string
	// Dir is where the layout is now: inside Staging until stepPublish
	// moves it to output_directory, or the user's `layout`.
	Dir string
	// Owned is true once Dir is output_directory written by this build, so
	// Artifact.Destroy may remove it; a user's `layout` is never removed.
	Owned bool
	// Layout is Dir opened.
	Layout *layout.Layout
}
