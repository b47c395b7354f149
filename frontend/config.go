package frontend

import (
	"fmt"
	"maps"
	"path"
	"slices"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// compareConfig checks uni's reading of the stage's image config against
// BuildKit's. The assembly step uses uni's, as `uni build` does, so both
// engines write the same config.json; unifile/bkcompat keeps the two
// readings equal, and a difference here is worth a warning, since it
// means a `uni build` of the same file would run something else.
func compareConfig(st *unifile.Stage, img *dockerspec.DockerOCIImage) []Warning {
	if img == nil {
		return nil
	}
	s, c := st.Settings, img.Config
	var w []Warning
	differ := func(field string, ours, theirs any) {
		w = append(w, Warning{Line: 0, Msg: fmt.Sprintf("uni reads %s as %v where BuildKit reads %v; the unikernel uses uni's reading (please report this)", field, ours, theirs)})
	}
	if !slices.Equal(s.Env, c.Env) {
		differ("ENV", s.Env, c.Env)
	}
	if !slices.Equal(s.Entrypoint, c.Entrypoint) {
		differ("ENTRYPOINT", s.Entrypoint, c.Entrypoint)
	}
	if !slices.Equal(s.Cmd, c.Cmd) {
		differ("CMD", s.Cmd, c.Cmd)
	}
	if cleanDir(s.WorkingDir) != cleanDir(c.WorkingDir) {
		differ("WORKDIR", s.WorkingDir, c.WorkingDir)
	}
	if s.User != c.User {
		differ("USER", s.User, c.User)
	}
	if !maps.Equal(s.Labels, c.Labels) && len(s.Labels)+len(c.Labels) > 0 {
		differ("LABEL", s.Labels, c.Labels)
	}
	ours := map[string]bool{}
	for _, p := range s.ExposedPorts {
		ours[fmt.Sprintf("%d/%s", p.Port, p.Protocol)] = true
	}
	theirs := map[string]bool{}
	for k := range c.ExposedPorts {
		theirs[k] = true
	}
	if !maps.Equal(ours, theirs) {
		differ("EXPOSE", slices.Sorted(maps.Keys(ours)), slices.Sorted(maps.Keys(theirs)))
	}
	return w
}

// cleanDir is a working directory as both engines mean it: "" is "/".
func cleanDir(d string) string {
	if d == "" {
		return "/"
	}
	return path.Clean(d)
}
