package unikernel

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/uniforge/packer-plugin-unikernel/oci"
)

// stepPull pulls an image pushed with `uni push` (or made by
// `docker buildx build --push`) into the output directory.
type stepPull struct {
	cfg *Config
	st  *runState
}

func (s *stepPull) Run(ctx context.Context, bag multistep.StateBag) multistep.StepAction {
	ui := bag.Get("ui").(packersdk.Ui)
	if err := checkOutput(s.cfg); err != nil {
		return halt(bag, ui, err)
	}
	staging, dir, err := newStaging(s.cfg.OutputDirectory)
	if err != nil {
		return halt(bag, ui, err)
	}
	s.st.Staging = staging
	ui.Say(fmt.Sprintf("Pulling %s", s.cfg.Ref))
	opts := []oci.Option{oci.WithDisk(s.cfg.Disk)}
	if s.cfg.Insecure {
		opts = append(opts, oci.WithInsecure(true))
	}
	if _, err := oci.Pull(ctx, s.cfg.Ref, dir, opts...); err != nil {
		return halt(bag, ui, fmt.Errorf("pull %s: %w", s.cfg.Ref, err))
	}
	s.st.Dir = dir
	return multistep.ActionContinue
}

// Cleanup removes the staging directory, as stepBuild's does.
func (s *stepPull) Cleanup(bag multistep.StateBag) { removeStaging(bag, s.st) }
