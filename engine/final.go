package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// finalPlan is what the last stage of a Unifile becomes, with the lines
// that errors of the later steps point at.
type finalPlan struct {
	*Plan
	kernelLine unifile.Location
	memoryLine unifile.Location
}

// finalRoot runs the core's Cut on the last stage of u and puts the
// Unifile's line on its errors.
func (b *builder) finalRoot(ctx context.Context, st *unifile.Stage, root *stageRoot) (*finalPlan, error) {
	fp := &finalPlan{kernelLine: st.Location, memoryLine: st.Location}
	for _, ins := range st.Instructions {
		switch ins.(type) {
		case *unifile.Kernel:
			fp.kernelLine = ins.Pos()
		case *unifile.Memory:
			fp.memoryLine = ins.Pos()
		}
	}
	plan, err := Cut(ctx, FinalStage{
		Root:     root.view(),
		Added:    root.upper,
		Settings: st.Settings, // the parser merged the base image's config, as BuildKit does
	})
	if err != nil {
		return nil, b.stepLineErr(st, root, err)
	}
	fp.Plan = plan
	return fp, nil
}

// stepLineErr locates a core error at the Unifile line that caused it.
func (b *builder) stepLineErr(st *unifile.Stage, root *stageRoot, err error) error {
	var se *StepError
	if !errors.As(err, &se) {
		return err
	}
	loc := st.Location
	switch se.Step {
	case StepEntrypoint:
		loc = lastOf(st, loc, func(i unifile.Instruction) bool {
			_, e := i.(*unifile.Entrypoint)
			_, c := i.(*unifile.Cmd)
			return e || c
		})
	case StepUser:
		loc = lastOf(st, loc, func(i unifile.Instruction) bool { _, ok := i.(*unifile.User); return ok })
	case StepWorkdir:
		loc = lastOf(st, loc, func(i unifile.Instruction) bool { _, ok := i.(*unifile.Workdir); return ok })
	case StepInclude:
		if l, ok := st.Settings.IncludeAt[se.Path]; ok {
			loc = l
		}
	case StepAdded:
		if l, ok := root.lines[se.Path]; ok {
			loc = l
		}
	}
	return b.lineErr(loc, err)
}

// lastOf is the location of the last instruction of st that match accepts,
// else def.
func lastOf(st *unifile.Stage, def unifile.Location, match func(unifile.Instruction) bool) unifile.Location {
	for _, ins := range st.Instructions {
		if match(ins) {
			def = ins.Pos()
		}
	}
	return def
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}
