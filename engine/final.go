package engine

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/uniforge/packer-plugin-unikernel/closure"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
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
		Settings: mergeBase(st.Settings, root.image),
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
		loc = lastOf(st, loc, func(i unifile.Instruction) bool {
			inc, ok := i.(*unifile.Include)
			return ok && slices.Contains(inc.Paths, se.Path)
		})
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

// mergeBase applies Docker's inheritance from a base image's config: its
// env comes first, its entrypoint and cmd hold unless the stage sets them
// (an ENTRYPOINT of the stage drops the base's CMD), its workdir and user
// hold unless replaced, its exposed ports add to the stage's.
func mergeBase(s unifile.Settings, img *rootfs.Image) unifile.Settings {
	if img != nil {
		c := img.Config
		s.Env = mergeEnv(c.Env, s.Env)
		switch {
		case len(s.Entrypoint) == 0 && len(s.Cmd) == 0:
			s.Entrypoint, s.Cmd = c.Entrypoint, c.Cmd
		case len(s.Entrypoint) == 0:
			s.Entrypoint = c.Entrypoint
		}
		if s.WorkingDir == "" {
			s.WorkingDir = c.WorkingDir
		}
		if s.User == "" {
			s.User = c.User
		}
		s.ExposedPorts = mergePorts(s.ExposedPorts, c)
	}
	if !hasEnv(s.Env, "PATH") {
		s.Env = append([]string{"PATH=" + closure.DefaultPath}, s.Env...)
	}
	return s
}

func mergeEnv(base, stage []string) []string {
	out := append([]string{}, base...)
	for _, kv := range stage {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, o := range out {
			if ok, _, _ := strings.Cut(o, "="); ok == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

func mergePorts(ports []spec.Port, c v1.Config) []spec.Port {
	seen := map[spec.Port]bool{}
	for _, p := range ports {
		seen[p] = true
	}
	for k := range c.ExposedPorts {
		num, proto, _ := strings.Cut(k, "/")
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 {
			continue
		}
		if proto == "" {
			proto = "tcp"
		}
		p := spec.Port{Port: uint16(n), Protocol: proto}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Protocol != ports[j].Protocol {
			return ports[i].Protocol < ports[j].Protocol
		}
		return ports[i].Port < ports[j].Port
	})
	return ports
}
