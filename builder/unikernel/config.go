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
// and/or `context` (build), `layout` (use), or `ref` (pull).
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The Unifile to build with the embedded engine, as `uni build -f`
	// does, giving the same bytes. Default: `Unifile` in `context`.
	Unifile string `mapstructure:"unifile"`
	// The build context directory. Default: the Unifile's directory.
	Context string `mapstructure:"context"`
	// Values of the Unifile's `ARG`s, as `uni build --build-arg`.
	BuildArgs map[string]string `mapstructure:"build_args"`
	// An existing image layout directory (from `uni build` or `uni pull`),
	// booted and used as it is; the build never changes or removes it.
	Layout string `mapstructure:"layout"`
	// An OCI reference of an image pushed with `uni push` or
	// `docker buildx build --push`, pulled into `output_directory`.
	Ref string `mapstructure:"ref"`
	// Pull `ref` over plain HTTP.
	Insecure bool `mapstructure:"insecure"`
	// Where a built or pulled layout is written once it has booted.
	// Default: `output-BUILDNAME`. If it exists and is not empty,
	// `packer build -force` is needed, and even then only an earlier image
	// layout is replaced.
	OutputDirectory string `mapstructure:"output_directory"`
	// Also write `disk.img`, the bootable raw disk (`unikernel-convert`
	// writes it when it is missing).
	Disk bool `mapstructure:"disk"`
	// The readiness check of the one boot that proves the image works
	// (see below).
	Ready ReadyConfig `mapstructure:"ready" required:"true"`

	ctx interpolate.Context
}

// ReadyConfig says when a booted image counts as working. The builder boots
// the image once under QEMU and yields the artifact only if this check
// passes within `timeout`; otherwise the build fails and leaves no output.
type ReadyConfig struct {
	// The kind of check: `tcp` (a guest port accepts a connection), `http`
	// (a GET answers `status`, and the body contains `body_contains`),
	// `console` (a serial console line contains `line`), or `exit` (the app
	// exits with `exit_status`).
	Type string `mapstructure:"type" required:"true"`
	// The guest port of a `tcp` or `http` check, forwarded from a free
	// loopback port of the build machine.
	Port int `mapstructure:"port"`
	// The path of an `http` check. Default: `/`.
	Path string `mapstructure:"path"`
	// The HTTP status an `http` check wants. Default: 200.
	Status int `mapstructure:"status"`
	// Text the body of an `http` answer must contain.
	BodyContains string `mapstructure:"body_contains"`
	// Text a console line must contain (`console` check).
	Line string `mapstructure:"line"`
	// The exit status an `exit` check wants. Default: 0.
	ExitStatus int `mapstructure:"exit_status"`
	// How long the boot and the check together may take. Default: 2m.
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
