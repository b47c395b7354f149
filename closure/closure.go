// Package closure computes what an entrypoint needs at run time from the
// root filesystem it is cut from: the program (through PATH and #! lines),
// its ELF interpreter and DT_NEEDED libraries found as ld.so finds them,
// what its runtime is known to load (NSS, gconv, a Python stdlib), and the
// data files every libc or Go program reads (hosts, CA roots, time zone).
//
// It never executes anything: ELF objects are read with debug/elf, so the
// closure of a binary of another architecture is computed the same way.
package closure

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// DefaultPath is the PATH used to find argv[0] when the environment has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Option changes how Resolve works.
type Option func(*options)

type options struct {
	env      []string
	extra    []string
	workdir  string
	runtimes []Runtime
}

// WithEnv gives the image environment (KEY=value): PATH finds argv[0] and
// the program of a "#!/usr/bin/env prog" line, LD_LIBRARY_PATH joins the
// library search, TZ names the time zone file to keep.
func WithEnv(env []string) Option { return func(o *options) { o.env = append([]string(nil), env...) } }

// WithExtraPaths keeps paths of the root beyond the closure (the Unifile's
// INCLUDE); a directory is kept whole, recursively.
func WithExtraPaths(paths ...string) Option {
	return func(o *options) { o.extra = append(o.extra, paths...) }
}

// WithWorkdir sets the working directory that relative paths (argv[0],
// a relative RPATH) are taken from. The default is "/".
func WithWorkdir(dir string) Option { return func(o *options) { o.workdir = rootfs.Clean(dir) } }

// WithRuntimes replaces the table of runtimes (DefaultRuntimes) consulted
// for what a program loads beyond its ELF closure.
func WithRuntimes(rts ...Runtime) Option {
	return func(o *options) { o.runtimes = append([]Runtime(nil), rts...) }
}

func (o *options) getenv(key string) (string, bool) {
	for i := len(o.env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(o.env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Result is what an entrypoint needs.
type Result struct {
	// Exe is the absolute path of argv[0] in the root: the file the init
	// executes (a script, when argv[0] is one).
	Exe string
	// Program is the real path (links resolved) of the ELF program that
	// ends up running: Exe itself, or the interpreter of a #! script.
	Program string
	// Paths lists, sorted, the paths to copy: files as they were found
	// (through links, which Copy keeps), and directories to keep whole.
	Paths []string
	// Generated holds files the root lacks but the program needs, made
	// here (a minimal /etc/nsswitch.conf), to be added after Paths.
	Generated []rootfs.Entry
	// Warnings says what was left out and why (an optional Python
	// extension module whose libraries are missing, for instance).
	Warnings []string
}

// Resolve computes the closure of argv run in fsys. ctx being done stops
// it; the error then wraps ctx's.
func Resolve(ctx context.Context, fsys rootfs.FS, argv []string, opts ...Option) (*Result, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("closure: empty entrypoint")
	}
	o := options{workdir: "/", runtimes: DefaultRuntimes()}
	for _, opt := range opts {
		opt(&o)
	}
	r := &resolver{ctx: ctx, fsys: fsys, o: o, paths: map[string]bool{}, elfs: map[string]*elfInfo{}}
	res, err := r.run(argv)
	if err != nil {
		return nil, fmt.Errorf("closure of %s: %w", argv[0], err)
	}
	return res, nil
}

// resolver holds the state of one Resolve call.
type resolver struct {
	ctx      context.Context
	fsys     rootfs.FS
	o        options
	paths    map[string]bool     // the result set
	elfs     map[string]*elfInfo // parsed objects by real path
	confDirs []string            // from /etc/ld.so.conf, read once
	confRead bool
	warnings []string
	procs    []*process // every program image loaded (the app, /usr/bin/env)
}

func (r *resolver) add(p string) { r.paths[rootfs.Clean(p)] = true }

func (r *resolver) warnf(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

func (r *resolver) run(argv []string) (*Result, error) {
	exe, prog, err := r.program(argv[0])
	if err != nil {
		return nil, err
	}
	if err := r.applyRuntimes(prog); err != nil {
		return nil, err
	}
	generated, err := r.systemFiles()
	if err != nil {
		return nil, err
	}
	for _, p := range r.o.extra {
		p = r.abs(p)
		if !exists(r.fsys, p) {
			return nil, fmt.Errorf("extra path %s: %w", p, rootfs.ErrNotExist)
		}
		r.add(p)
	}
	res := &Result{Exe: exe, Program: prog.Real, Generated: generated, Warnings: r.warnings}
	for p := range r.paths {
		res.Paths = append(res.Paths, p)
	}
	sort.Strings(res.Paths)
	return res, nil
}

// abs makes p absolute against the working directory.
func (r *resolver) abs(p string) string {
	if path.IsAbs(p) {
		return rootfs.Clean(p)
	}
	return rootfs.Clean(path.Join(r.o.workdir, p))
}

// elfAt parses the ELF object whose real path is e.Path, once.
func (r *resolver) elfAt(e *rootfs.Entry) (*elfInfo, error) {
	if info, ok := r.elfs[e.Path]; ok {
		return info, nil
	}
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	info, err := readELF(e)
	if err != nil {
		return nil, err
	}
	r.elfs[e.Path] = info
	return info, nil
}
