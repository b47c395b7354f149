package unikernel

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/uniforge/packer-plugin-unikernel/engine"
)

// stepBuild builds the Unifile with the embedded engine, as `uni build`
// does, so the layout is byte-identical to the CLI's.
type stepBuild struct {
	cfg *Config
	st  *runState
}

func (s *stepBuild) Run(ctx context.Context, bag multistep.StateBag) multistep.StepAction {
	ui := bag.Get("ui").(packersdk.Ui)
	contextDir, unifile := s.cfg.Context, s.cfg.Unifile
	if contextDir == "" {
		contextDir = filepath.Dir(unifile)
	}
	name := unifileName(contextDir, unifile)
	if err := checkOutput(s.cfg, contextDir, name); err != nil {
		return halt(bag, ui, err)
	}
	staging, dir, err := newStaging(s.cfg.OutputDirectory)
	if err != nil {
		return halt(bag, ui, err)
	}
	s.st.Staging = staging
	ui.Say(fmt.Sprintf("Building %s", name))
	_, err = engine.Build(ctx, engine.Request{
		ContextDir: contextDir,
		Unifile:    unifile,
		BuildArgs:  s.cfg.BuildArgs,
		OutDir:     dir,
		Disk:       s.cfg.Disk,
		Log:        uiWriter{ui},
	})
	if err != nil {
		return halt(bag, ui, fmt.Errorf("build: %w", err))
	}
	s.st.Dir = dir
	return multistep.ActionContinue
}

// Cleanup removes the staging directory: the layout was moved out of it if
// the build succeeded, and is unproven otherwise.
func (s *stepBuild) Cleanup(bag multistep.StateBag) { removeStaging(bag, s.st) }

func unifileName(contextDir, unifile string) string {
	if unifile != "" {
		return unifile
	}
	return filepath.Join(contextDir, "Unifile")
}

// halt records err as the build's error and stops the run.
func halt(bag multistep.StateBag, ui packersdk.Ui, err error) multistep.StepAction {
	bag.Put("error", err)
	ui.Error(err.Error())
	return multistep.ActionHalt
}

// uiWriter shows the engine's progress lines in Packer's UI.
type uiWriter struct{ ui packersdk.Ui }

func (w uiWriter) Write(p []byte) (int, error) {
	w.ui.Message(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
