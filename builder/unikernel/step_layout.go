package unikernel

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepLayout takes an existing image layout directory as it is. It is the
// user's: nothing here ever removes it.
type stepLayout struct {
	cfg *Config
	st  *runState
}

func (s *stepLayout) Run(_ context.Context, bag multistep.StateBag) multistep.StepAction {
	ui := bag.Get("ui").(packersdk.Ui)
	ui.Say(fmt.Sprintf("Using the image layout %s", s.cfg.Layout))
	s.st.Dir, s.st.Owned = s.cfg.Layout, false
	return multistep.ActionContinue
}

func (s *stepLayout) Cleanup(multistep.StateBag) {}
