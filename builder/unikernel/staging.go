package unikernel

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/uniforge/packer-plugin-unikernel/image"
)

// A built or pulled layout is unproven until it has booted, so it is made in
// a staging directory beside output_directory and moved there by stepPublish
// only after the readiness check passes: a failed or cancelled build leaves
// output_directory exactly as it was.

// stagingPrefix names staging directories; image.WriteOutput's own temporary
// directories use another name, so its stale-file sweep never takes ours.
const stagingPrefix = ".packer-staging-"

// checkOutput refuses, before any work, an output_directory that a
// successful build could not replace. Like Packer's own builders, an
// existing non-empty directory needs `packer build -force`; even then only
// an empty directory or an earlier image layout is replaced.
func checkOutput(cfg *Config, protect ...string) error {
	out := cfg.OutputDirectory
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 && !cfg.PackerForce {
		return fmt.Errorf("output_directory %s already exists; packer build -force replaces it (when it is an earlier image layout)", out)
	}
	if err := image.PrepareOutput(out, protect...); err != nil {
		return fmt.Errorf("output_directory: %w", err)
	}
	return nil
}

// newStaging makes this build's staging directory beside out and returns it
// with the layout directory inside it (not yet made).
func newStaging(out string) (staging, dir string, err error) {
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", "", fmt.Errorf("output_directory: %w", err)
	}
	staging, err = os.MkdirTemp(parent, stagingPrefix+filepath.Base(out)+"-")
	if err != nil {
		return "", "", fmt.Errorf("output_directory: %w", err)
	}
	return staging, filepath.Join(staging, "layout"), nil
}

// removeStaging removes the staging directory, whatever the outcome: after
// stepPublish it is empty, otherwise it holds an unproven layout.
func removeStaging(bag multistep.StateBag, st *runState) {
	if st.Staging == "" {
		return
	}
	if err := os.RemoveAll(st.Staging); err != nil {
		bag.Get("ui").(packersdk.Ui).Error(fmt.Sprintf("removing %s: %s", st.Staging, err))
		return
	}
	st.Staging = ""
}
