package closure

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// pythonRuntime is CPython. It needs its standard library (found from the
// binary's location and name, as getpath does: <prefix>/lib/pythonX.Y),
// the extension modules of lib-dynload with their libraries, and the
// site-packages/dist-packages directories that exist. A virtual
// environment (pyvenv.cfg beside the program's bin/) adds its own
// site-packages.
//
// Left out: the stdlib's tests, IDLE and tkinter (a unikernel has no
// display), and __pycache__: the image is built with one fixed mtime, which
// does not match the source mtimes recorded in the .pyc files, so CPython
// would ignore them anyway.
type pythonRuntime struct{}

var pythonName = regexp.MustCompile(`^python(\d+)(\.\d+)?$`)

// pythonSkipTop are top-level stdlib entries a unikernel does not need.
func pythonSkipTop(name string) bool {
	switch name {
	case "test", "idlelib", "tkinter", "turtledemo", "__pycache__":
		return true
	}
	return false
}

// pythonSkipModule are lib-dynload modules that only serve the skipped parts.
func pythonSkipModule(name string) bool {
	return strings.HasPrefix(name, "_test") || strings.HasPrefix(name, "_tkinter") ||
		strings.HasPrefix(name, "_xxtestfuzz") || strings.HasPrefix(name, "_ctypes_test")
}

func (pythonRuntime) Name() string { return "python" }

func (pythonRuntime) Match(prog *Program) bool { return pythonName.MatchString(path.Base(prog.Real)) }

func (pythonRuntime) Needs(ctx context.Context, fsys rootfs.FS, prog *Program) ([]string, error) {
	prefix := path.Dir(path.Dir(prog.Real))
	version, err := pythonVersion(fsys, prefix, path.Base(prog.Real))
	if err != nil {
		return nil, err
	}
	var stdlib string
	for _, libdir := range []string{"lib", "lib64"} {
		if d := path.Join(prefix, libdir, version); exists(fsys, d+"/os.py") {
			stdlib = d
			break
		}
	}
	if stdlib == "" {
		return nil, fmt.Errorf("%s: no standard library (os.py) in %s/lib/%s or %s/lib64/%s", prog.Real, prefix, version, prefix, version)
	}
	var out []string
	if err := walkFiles(ctx, fsys, stdlib, func(rel string) bool {
		top, _, _ := strings.Cut(rel, "/")
		if pythonSkipTop(top) || strings.Contains("/"+rel+"/", "/__pycache__/") {
			return false
		}
		return !strings.HasPrefix(rel, "lib-dynload/") || !pythonSkipModule(path.Base(rel))
	}, &out); err != nil {
		return nil, err
	}
	// Packages outside the stdlib directory: Fedora's pure-Python
	// site-packages, Debian's pip installs, a virtual environment.
	extra := []string{
		path.Join(prefix, "lib", version, "site-packages"),
		path.Join(prefix, "local/lib", version, "dist-packages"),
	}
	venv := path.Dir(path.Dir(prog.Path))
	if cfg := path.Join(venv, "pyvenv.cfg"); exists(fsys, cfg) {
		out = append(out, cfg)
		extra = append(extra, path.Join(venv, "lib", version, "site-packages"))
	}
	for _, d := range extra {
		if strings.HasPrefix(d+"/", stdlib+"/") || !isDir(fsys, d) {
			continue
		}
		if err := walkFiles(ctx, fsys, d, func(rel string) bool {
			return !strings.Contains("/"+rel+"/", "/__pycache__/")
		}, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pythonVersion returns "python3.11" for a program named python3.11; for a
// bare python3 it finds the one <prefix>/lib/python3.* holding os.py.
func pythonVersion(fsys rootfs.FS, prefix, name string) (string, error) {
	if m := pythonName.FindStringSubmatch(name); m != nil && m[2] != "" {
		return name, nil
	}
	var found []string
	for _, libdir := range []string{"lib", "lib64"} {
		matches, err := glob(fsys, path.Join(prefix, libdir, name+".*", "os.py"))
		if err != nil {
			return "", err
		}
		for _, m := range matches {
			found = append(found, path.Base(path.Dir(m)))
		}
	}
	switch {
	case len(found) == 0:
		return "", fmt.Errorf("%s/%s: no %s.* standard library under %s/lib", prefix, name, name, prefix)
	case len(found) > 1 && found[0] != found[len(found)-1]:
		return "", fmt.Errorf("%s/%s: several standard libraries %v; run a versioned pythonX.Y", prefix, name, found)
	}
	return found[0], nil
}

// walkFiles appends to out the non-directories below dir (links as they
// are, to be copied with their targets) for which keep(relative path)
// holds; a directory whose relative path keep rejects is not entered.
func walkFiles(ctx context.Context, fsys rootfs.FS, dir string, keep func(rel string) bool, out *[]string) error {
	d, err := stat(fsys, dir)
	if err != nil {
		return err
	}
	if d == nil || !d.IsDir() {
		return fmt.Errorf("%s: %w", dir, rootfs.ErrNotDir)
	}
	shown := rootfs.Clean(dir)
	return rootfs.WalkDir(ctx, fsys, d.Path, func(e *rootfs.Entry, rel string) error {
		switch {
		case !keep(rel):
			if e.IsDir() {
				return fs.SkipDir
			}
		case !e.IsDir():
			*out = append(*out, path.Join(shown, rel))
		}
		return nil
	})
}
