package closure

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Runtime knows what a kind of program loads from disk beyond its ELF
// closure: an interpreter's standard library, its extension modules.
type Runtime interface {
	// Name identifies the runtime in errors.
	Name() string
	// Match reports whether prog is this runtime.
	Match(prog *Program) bool
	// Needs lists the paths prog needs: files, or directories kept whole.
	// Shared objects among them (named *.so or *.so.*) are loaded as
	// dlopen would load them, and left out with a warning when their own
	// libraries are missing. ctx being done should stop a long search.
	Needs(ctx context.Context, fsys rootfs.FS, prog *Program) ([]string, error)
}

// DefaultRuntimes is the table of runtimes Resolve consults, in order; all
// that match contribute.
func DefaultRuntimes() []Runtime {
	return []Runtime{nodeRuntime{}, pythonRuntime{}}
}

// applyRuntimes adds what the matching runtimes say prog needs.
func (r *resolver) applyRuntimes(prog *Program) error {
	for _, rt := range r.o.runtimes {
		if !rt.Match(prog) {
			continue
		}
		needs, err := rt.Needs(r.ctx, r.fsys, prog)
		if err != nil {
			return fmt.Errorf("%s runtime: %w", rt.Name(), err)
		}
		for _, p := range needs {
			p = rootfs.Clean(p)
			if isSharedObjectName(path.Base(p)) {
				if e, _ := stat(r.fsys, p); e != nil && e.IsRegular() && isELF(e) {
					r.loadOptional(prog.proc, p, e)
					continue
				}
			}
			r.add(p)
		}
	}
	return nil
}

// isSharedObjectName matches libfoo.so, libfoo.so.1, mod.cpython-311-x86_64-linux-gnu.so.
func isSharedObjectName(name string) bool {
	return strings.HasSuffix(name, ".so") || sonameVersion.MatchString(name)
}

var sonameVersion = regexp.MustCompile(`\.so\.[0-9]`)
