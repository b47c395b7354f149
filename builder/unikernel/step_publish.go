package unikernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/layout"
)

// stepPublish moves a layout that booted from its staging directory to
// output_directory, by image.WriteOutput's rules: written beside it under a
// temporary name, then renamed over an empty directory or an earlier layout.
type stepPublish struct {
	cfg *Config
	st  *runState
}

func (s *stepPublish) Run(_ context.Context, bag multistep.StateBag) multistep.StepAction {
	ui := bag.Get("ui").(packersdk.Ui)
	if s.st.Staging == "" {
		return multistep.ActionContinue // a user's layout stays where it is
	}
	out := s.cfg.OutputDirectory
	err := image.WriteOutput(out, func(tmp string) error {
		ents, err := os.ReadDir(s.st.Dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := os.Rename(filepath.Join(s.st.Dir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return halt(bag, ui, fmt.Errorf("output_directory: %w", err))
	}
	l, err := layout.Open(out)
	if err != nil {
		return halt(bag, ui, fmt.Errorf("output_directory: %w", err))
	}
	s.st.Dir, s.st.Owned, s.st.Layout = out, true, l
	ui.Say(fmt.Sprintf("Wrote %s", out))
	return multistep.ActionContinue
}

func (s *stepPublish) Cleanup(multistep.StateBag) {}
