package unikernel

import (
	"context"
	"fmt"
	"os"
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
	ui.Say(fmt.Sprintf("Building %s into %s", unifileName(contextDir, unifile), s.cfg.OutputDirectory))
	existed := dirExists(s.cfg.OutputDirectory)
	_, err := engine.Build(ctx, engine.Request{
		ContextDir: contextDir,
		Unifile:    unifile,
		BuildArgs:  s.cfg.BuildArgs,
		OutDir:     s.cfg.OutputDirectory,
		Disk:       s.cfg.Disk,
		Log:        uiWriter{ui},
	})
	if err != nil {
		return halt(bag, ui, fmt.Errorf("build: %w", err))
	}
	s.st.Dir, s.st.Owned = s.cfg.OutputDirectory, !existed
	return multistep.ActionContinue
}

// Cleanup removes the layout this build wrote when a later step failed or
// the build was cancelled. engine.Build itself leaves nothing on failure.
func (s *stepBuild) Cleanup(bag multistep.StateBag) { cleanupOwned(bag, s.st) }

func unifileName(contextDir, unifile string) string {
	if unifile != "" {
		return unifile
	}
	return filepath.Join(contextDir, "Unifile")
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// cleanupOwned removes st.Dir if this build wrote it and the build did not
// succeed (an error, a cancellation or a halt).
func cleanupOwned(bag multistep.StateBag, st *runState) {
	_, cancelled := bag.GetOk(multistep.StateCancelled)
	_, halted := bag.GetOk(multistep.StateHalted)
	_, failed := bag.GetOk("error")
	if !(cancelled || halted || failed) || !st.Owned || st.Dir == "" {
		return
	}
	ui := bag.Get("ui").(packersdk.Ui)
	if err := os.RemoveAll(st.Dir); err != nil {
		ui.Error(fmt.Sprintf("removing %s: %s", st.Dir, err))
		return
	}
	ui.Say(fmt.Sprintf("Removed %s", st.Dir))
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
