package engine

import (
	"errors"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// stepLineErr puts on a core error (a *StepError) the line of st that
// caused it; other errors are returned as they are.
func (b *builder) stepLineErr(st *unifile.Stage, err error, lines map[string]unifile.Location) error {
	if loc, ok := StepLocation(st, err, lines); ok {
		return b.lineErr(loc, err)
	}
	return err
}

// StepLocation is the instruction of st that a core error (a *StepError
// in err's chain) is about: the last ENTRYPOINT or CMD, USER or WORKDIR,
// the INCLUDE that named the path, the instruction that added the path
// (added maps paths to the instructions that wrote them, when the front
// door knows), KERNEL or MEMORY; st's FROM line when none says more. ok
// is false when err is no core error.
func StepLocation(st *unifile.Stage, err error, added map[string]unifile.Location) (loc unifile.Location, ok bool) {
	var se *StepError
	if !errors.As(err, &se) {
		return unifile.Location{}, false
	}
	loc = st.Location
	is := func(kw string) func(unifile.Instruction) bool {
		return func(i unifile.Instruction) bool { return i.Keyword() == kw }
	}
	switch se.Step {
	case StepEntrypoint:
		loc = lastOf(st, loc, func(i unifile.Instruction) bool { return i.Keyword() == "ENTRYPOINT" || i.Keyword() == "CMD" })
	case StepUser:
		loc = lastOf(st, loc, is("USER"))
	case StepWorkdir:
		loc = lastOf(st, loc, is("WORKDIR"))
	case StepKernel:
		loc = lastOf(st, loc, is("KERNEL"))
	case StepMemory:
		loc = lastOf(st, loc, is("MEMORY"))
	case StepInclude:
		if l, ok := st.Settings.IncludeAt[se.Path]; ok {
			loc = l
		}
	case StepAdded:
		if l, ok := added[se.Path]; ok {
			loc = l
		}
	}
	return loc, true
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
