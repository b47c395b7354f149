//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config,ReadyConfig

package unikernel

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// BuilderID names artifacts of this builder; post-processors check it.
const BuilderID = "uniforge.unikernel"

// Ready kinds: what tells the builder the booted image works.
const (
	ReadyTCP     = "tcp"     // a guest port accepts a connection
	ReadyHTTP    = "http"    // an HTTP GET answers the status (and body)
	ReadyConsole = "console" // a line on the serial console contains Line
	ReadyExit    = "exit"    // the app exits with ExitStatus
)

// Config is the builder's configuration. Exactly one source: `unifile`
// (with `context`), `layout`, or `ref`.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Unifile to build with the embedded engine, as `uni build -f`.
	// Defaults to `context`/Unifile when only `context` is set.
	Unifile string `mapstructure:"unifile"`
	// Context is the build context directory (default: the Unifile's directory).
	Context string `mapstructure:"context"`
	// BuildArgs are the Unifile's ARG values, as `--build-arg`.
	BuildArgs map[string]string `mapstructure:"build_args"`
	// Layout is an existing image layout directory, used as it is.
	Layout string `mapstructure:"layout"`
	// Ref is an OCI reference of an image pushed with `uni push`.
	Ref string `mapstructure:"ref"`
	// Insecure pulls Ref over plain HTTP.
	Insecure bool `mapstructure:"insecure"`
	// OutputDirectory is where a built or pulled layout is written
	// (default: output-BUILDNAME). It must be absent, empty or an earlier layout.
	OutputDirectory string `mapstructure:"output_directory"`
	// Disk also writes disk.img, which the convert post-processor needs
	// (it writes it itself when missing).
	Disk bool `mapstructure:"disk"`
	// Ready is the readiness check of the one boot that proves the image.
	Ready ReadyConfig `mapstructure:"ready"`

	ctx interpolate.Context
}

// ReadyConfig says when a booted image counts as working.
type ReadyConfig struct {
	// Type is tcp, http, console or exit.
	Type string `mapstructure:"type"`
	// Port is the guest port of a tcp or http check.
	Port int `mapstructure:"port"`
	// Path is the HTTP path (default /).
	Path string `mapstructure:"path"`
	// Status is the HTTP status wanted (default 200).
	Status int `mapstructure:"status"`
	// BodyContains, if set, must occur in the HTTP body.
	BodyContains string `mapstructure:"body_contains"`
	// Line must occur in a console line (console check).
	Line string `mapstructure:"line"`
	// ExitStatus is the app's exit status wanted (exit check; default 0).
	ExitStatus int `mapstructure:"exit_status"`
	// Timeout bounds the boot and the check (default 2m).
	Timeout time.Duration `mapstructure:"timeout"`
}

// Prepare decodes raws into c and checks it; errors name the field.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "packer.builder.unikernel",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	var errs *packer.MultiError
	add := func(e error) { errs = packer.MultiErrorAppend(errs, e) }

	sources := 0
	if c.Unifile != "" || c.Context != "" {
		sources++
	}
	if c.Layout != "" {
		sources++
	}
	if c.Ref != "" {
		sources++
	}
	if sources != 1 {
		add(errors.New("exactly one of unifile (or context), layout or ref must be set"))
	}
	if c.OutputDirectory == "" {
		c.OutputDirectory = "output-" + c.PackerBuildName
	}
	if c.Layout != "" && c.Disk {
		add(errors.New("disk: not with layout, which is used as it is (the convert post-processor writes disk.img)"))
	}
	for _, e := range c.Ready.prepare() {
		add(e)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func (r *ReadyConfig) prepare() []error {
	var errs []error
	if r.Timeout == 0 {
		r.Timeout = 2 * time.Minute
	}
	if r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("ready.timeout: %s is negative", r.Timeout))
	}
	switch r.Type {
	case ReadyTCP, ReadyHTTP:
		if r.Port < 1 || r.Port > 65535 {
			errs = append(errs, fmt.Errorf("ready.port: %d is no port (1-65535), needed by ready.type %q", r.Port, r.Type))
		}
		if r.Type == ReadyHTTP {
			if r.Path == "" {
				r.Path = "/"
			}
			if r.Status == 0 {
				r.Status = 200
			}
		}
	case ReadyConsole:
		if r.Line == "" {
			errs = append(errs, errors.New("ready.line: must be set for ready.type \"console\""))
		}
	case ReadyExit:
	case "":
		errs = append(errs, errors.New("ready.type: must be set (tcp, http, console or exit)"))
	default:
		errs = append(errs, fmt.Errorf("ready.type: %q is none of tcp, http, console, exit", r.Type))
	}
	return errs
}
