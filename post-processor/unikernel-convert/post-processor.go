//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

// Package convert is the Packer post-processor `unikernel-convert`: it turns
// the builder's image layout into a disk format (qcow2, vmdk, vhd, vhdx, gce,
// ova, raw) with the same format table as `uni convert` (image/format).
package convert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/uniforge/packer-plugin-unikernel/builder/unikernel"
	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/image/format"
	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// BuilderID names the artifacts of this post-processor.
const BuilderID = "uniforge.unikernel-convert"

// Config is the post-processor's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The disk format: `raw`, `qcow2`, `vmdk` (streamOptimized), `vhd`
	// (fixed, for Azure), `vhdx`, `gce` (a `disk.raw` tarball) or `ova`.
	// The same table as `uni convert --format`.
	Format string `mapstructure:"format" required:"true"`
	// The file written. Default: the layout directory's path plus the
	// format's extension (`out/app` gives `out/app.qcow2`).
	Output string `mapstructure:"output"`
	// Compress the clusters (`qcow2` only).
	Compress bool `mapstructure:"compress"`
	// The VM's name inside an `ova`, and the extent name of a `vmdk`.
	Name string `mapstructure:"name"`
	// Keep the builder's layout (the default). `false` removes it when the
	// build wrote it.
	KeepInputArtifact *bool `mapstructure:"keep_input_artifact"`

	ctx interpolate.Context
}

// PostProcessor is `unikernel-convert`.
type PostProcessor struct {
	config Config
	format format.Format
}

// ConfigSpec is the HCL2 schema of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure decodes and checks the configuration; errors name the field.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	err := config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         "packer.post-processor.unikernel-convert",
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	if p.config.Format == "" {
		return errors.New("format: must be set (one of " + fmt.Sprint(format.Names()) + ")")
	}
	f, err := format.Lookup(p.config.Format)
	if err != nil {
		return fmt.Errorf("format: %w", err)
	}
	if p.config.Compress && f.Compression == format.CompressNo {
		return fmt.Errorf("compress: format %s is not compressed", f.Name)
	}
	p.format = f
	return nil
}

// PostProcess writes the converted disk and returns it as a new artifact.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	dir, ok := in.State(unikernel.StateLayoutDir).(string)
	if in.BuilderId() != unikernel.BuilderID || !ok {
		return nil, false, false, fmt.Errorf("unikernel-convert takes the artifact of the unikernel builder, not %q", in.BuilderId())
	}
	l, err := layout.Open(dir)
	if err != nil {
		return nil, false, false, err
	}
	if !l.HasDisk() {
		ui.Say(fmt.Sprintf("Writing %s", l.Path(spec.DiskFile)))
	}
	if err := image.EnsureDisk(ctx, l, resolveBundle); err != nil {
		return nil, false, false, fmt.Errorf("writing disk.img: %w", err)
	}
	cfg := l.Config()
	opts := format.Options{
		Compress:        p.config.Compress,
		Name:            p.config.Name,
		CPUs:            cfg.CPUs,
		MemoryMiB:       cfg.MemoryBytes >> 20,
		SourceDateEpoch: cfg.Build.SourceDateEpoch,
	}
	out := p.config.Output
	if out == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, false, false, err
		}
		out = abs + p.format.Ext
	}
	ui.Say(fmt.Sprintf("Converting %s to %s (%s)", l.Path(spec.DiskFile), out, p.format.Name))
	if err := p.format.ConvertFile(ctx, l.Path(spec.DiskFile), out, opts); err != nil {
		return nil, false, false, fmt.Errorf("convert to %s: %w", p.format.Name, err)
	}
	keep := p.config.KeepInputArtifact == nil || *p.config.KeepInputArtifact
	return &Artifact{path: out, format: p.format.Name}, keep, false, nil
}

// resolveBundle finds the kernel bundle a layout was built on, in the cache
// (as `uni convert` does), for the boot loaders of disk.img.
func resolveBundle(ctx context.Context, digest string) (*kernel.Bundle, error) {
	cache, err := cachedir.Dir()
	if err != nil {
		return nil, err
	}
	return kernel.Resolve(ctx, digest, kernel.WithCacheDir(filepath.Join(cache, cachedir.Kernels)))
}

// Artifact is one converted disk file.
type Artifact struct {
	path   string
	format string
}

func (*Artifact) BuilderId() string { return BuilderID }
func (a *Artifact) Files() []string { return []string{a.path} }
func (a *Artifact) Id() string      { return a.path }
func (a *Artifact) String() string  { return fmt.Sprintf("%s disk %s", a.format, a.path) }
func (a *Artifact) Destroy() error  { return os.Remove(a.path) }
func (a *Artifact) State(name string) interface{} {
	if name == "format" {
		return a.format
	}
	return nil
}
