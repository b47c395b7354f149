package unikernel

import "github.com/uniforge/packer-plugin-unikernel/layout"

// runState is what the steps of one build hand each other. The SDK's state
// bag carries only what it imposes (ui, hook, error); the steps share this
// typed value instead.
type runState struct {
	// Dir is the image layout directory the source step produced.
	Dir string
	// Owned is true when this build wrote Dir, so a failed or cancelled
	// build removes it; a user's `layout` is never removed.
	Owned bool
	// Layout is Dir opened.
	Layout *layout.Layout
}
