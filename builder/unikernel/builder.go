// Package unikernel is the Packer builder `unikernel`: it builds an image
// layout from a Unifile with the same engine as `uni build` (or takes a
// layout directory, or pulls an OCI reference), boots it once under QEMU,
// and yields it as the artifact only when its readiness check passes.
package unikernel

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Builder is the `unikernel` builder.
type Builder struct {
	config Config
	runner multistep.Runner
}

// ConfigSpec is the HCL2 schema of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes and checks the configuration.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	if err := b.config.Prepare(raws...); err != nil {
		return nil, nil, err
	}
	return nil, nil, nil
}

// Run makes the layout, proves it boots and returns it.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	st := &runState{}
	var source multistep.Step
	switch {
	case b.config.Layout != "":
		source = &stepLayout{cfg: &b.config, st: st}
	case b.config.Ref != "":
		source = &stepPull{cfg: &b.config, st: st}
	default:
		source = &stepBuild{cfg: &b.config, st: st}
	}
	steps := []multistep.Step{source, &stepBoot{cfg: &b.config, st: st}, &stepPublish{cfg: &b.config, st: st}}

	bag := new(multistep.BasicStateBag)
	bag.Put("ui", ui)
	bag.Put("hook", hook)
	b.runner = commonsteps.NewRunner(steps, b.config.PackerConfig, ui)
	b.runner.Run(ctx, bag)

	if err, ok := bag.GetOk("error"); ok {
		return nil, err.(error)
	}
	if _, ok := bag.GetOk(multistep.StateCancelled); ok {
		return nil, errors.New("build was cancelled")
	}
	if _, ok := bag.GetOk(multistep.StateHalted); ok {
		return nil, errors.New("build was halted")
	}
	if st.Layout == nil {
		return nil, errors.New("no image layout was made")
	}
	return newArtifact(st.Layout, st.Owned)
}
