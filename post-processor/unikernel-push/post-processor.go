//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

// Package push is the Packer post-processor `unikernel-push`: it pushes the
// builder's image layout to a registry as an OCI artifact, with the same
// code as `uni push` (oci.Push).
package push

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/uniforge/packer-plugin-unikernel/builder/unikernel"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
)

// BuilderID names the artifacts of this post-processor.
const BuilderID = "uniforge.unikernel-push"

// Config is the post-processor's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Where the image goes: `registry/repository:tag`. `uni pull`,
	// `uni run` and `oras pull` take it from there.
	Ref string `mapstructure:"ref" required:"true"`
	// Also push `disk.img` (a registry normally stores no second copy:
	// the disk is a function of the other files).
	Disk bool `mapstructure:"disk"`
	// Push over plain HTTP.
	Insecure bool `mapstructure:"insecure"`

	ctx interpolate.Context
}

// PostProcessor is `unikernel-push`.
type PostProcessor struct{ config Config }

// ConfigSpec is the HCL2 schema of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure decodes and checks the configuration; errors name the field.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	err := config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         "packer.post-processor.unikernel-push",
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	if p.config.Ref == "" {
		return errors.New("ref: must be set (registry/repository:tag)")
	}
	return nil
}

// PostProcess pushes the layout and returns the pushed reference; the
// layout itself is kept.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	dir, ok := in.State(unikernel.StateLayoutDir).(string)
	if in.BuilderId() != unikernel.BuilderID || !ok {
		return nil, false, false, fmt.Errorf("unikernel-push takes the artifact of the unikernel builder, not %q", in.BuilderId())
	}
	l, err := layout.Open(dir)
	if err != nil {
		return nil, false, false, err
	}
	opts := []oci.Option{oci.WithDisk(p.config.Disk)}
	if p.config.Insecure {
		opts = append(opts, oci.WithInsecure(true))
	}
	ui.Say(fmt.Sprintf("Pushing %s to %s", dir, p.config.Ref))
	pushed, err := oci.Push(ctx, l, p.config.Ref, opts...)
	if err != nil {
		return nil, false, false, fmt.Errorf("push %s: %w", p.config.Ref, err)
	}
	ui.Say(fmt.Sprintf("Pushed %s (index %s, %d blobs sent)", pushed.Ref, pushed.Index, pushed.Uploaded))
	return &Artifact{ref: pushed.Ref, digest: pushed.Index.String()}, true, false, nil
}

// Artifact is a pushed image: it has no local files.
type Artifact struct {
	ref    string
	digest string
}

func (*Artifact) BuilderId() string { return BuilderID }
func (*Artifact) Files() []string   { return nil }

// Id is the pushed reference pinned by digest.
func (a *Artifact) Id() string     { return a.ref + "@" + a.digest }
func (a *Artifact) String() string { return "pushed " + a.Id() }

// Destroy leaves the registry alone: nothing here deletes what others may pull.
func (*Artifact) Destroy() error { return nil }
func (a *Artifact) State(name string) interface{} {
	if name == "ref" {
		return a.ref
	}
	return nil
}
