package closure

import (
	"context"
	"path"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// nodeRuntime is Node.js. Its JavaScript core and (in the official and
// NodeSource builds) ICU data are inside the binary; a distribution build
// linked against libicu has it in DT_NEEDED. So node needs nothing beyond
// its ELF closure and what the app itself requires (copied by the build).
type nodeRuntime struct{}

func (nodeRuntime) Name() string { return "node" }

func (nodeRuntime) Match(prog *Program) bool {
	base := path.Base(prog.Real)
	return base == "node" || base == "nodejs"
}

func (nodeRuntime) Needs(context.Context, rootfs.FS, *Program) ([]string, error) { return nil, nil }
