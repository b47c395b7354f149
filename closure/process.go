package closure

import (
	"debug/elf"
	"fmt"
	"path"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// process is one program image: the objects ld.so maps into it. Names
// resolve once per process, as ld.so reuses an object already loaded
// under a needed name or soname.
type process struct {
	main   *object
	abi    abi
	musl   bool
	byName map[string]*object
	byReal map[string]*object
}

// object is one ELF object mapped into a process.
type object struct {
	path   string // where it was found, links not resolved (what $ORIGIN is taken from)
	real   string // links resolved
	info   *elfInfo
	loader *object // the object whose DT_NEEDED (or dlopen) brought it in
}

func (p *process) register(o *object, names ...string) {
	p.byReal[o.real] = o
	for _, n := range append(names, o.info.Soname) {
		if n != "" {
			p.byName[n] = o
		}
	}
}

// hasLibc reports whether the process maps the C library.
func (p *process) hasLibc() bool {
	for name := range p.byName {
		if strings.HasPrefix(name, "libc.so") || strings.HasPrefix(name, "libc.musl-") {
			return true
		}
	}
	return false
}

// loadProgram loads the ELF program found at exe (an absolute path in the
// root) with its interpreter and DT_NEEDED libraries.
func (r *resolver) loadProgram(exe string) (*process, error) {
	e, err := stat(r.fsys, exe)
	if err != nil {
		return nil, err
	}
	if e == nil || !e.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", exe)
	}
	info, err := r.elfAt(e)
	if err != nil {
		return nil, err
	}
	if info.Type != elf.ET_EXEC && info.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: ELF type %v is not a program", exe, info.Type)
	}
	main := &object{path: e.Path, real: e.Path, info: info}
	p := &process{main: main, abi: abiOf(info), byName: map[string]*object{}, byReal: map[string]*object{}}
	p.register(main)
	r.add(exe)
	r.procs = append(r.procs, p)
	if info.Interp != "" {
		interp := r.abs(info.Interp)
		ie, err := stat(r.fsys, interp)
		if err != nil {
			return nil, err
		}
		if ie == nil || !ie.IsRegular() {
			return nil, fmt.Errorf("%s (ELF interpreter), needed by %s, not found", interp, exe)
		}
		iinfo, err := r.elfAt(ie)
		if err != nil {
			return nil, err
		}
		if !info.sameABI(iinfo) {
			return nil, fmt.Errorf("%s (ELF interpreter), needed by %s: %v/%v, want %v/%v",
				interp, exe, iinfo.Class, iinfo.Machine, info.Class, info.Machine)
		}
		p.register(&object{path: interp, real: ie.Path, info: iinfo, loader: main}, path.Base(interp))
		p.musl = isMusl(interp)
		r.add(interp)
	}
	if err := r.loadNeeded(p, main); err != nil {
		return nil, err
	}
	return p, nil
}

// loadNeeded loads, breadth first as ld.so does, the DT_NEEDED libraries
// of the roots and of everything they bring in.
func (r *resolver) loadNeeded(p *process, roots ...*object) error {
	queue := append([]*object(nil), roots...)
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, name := range o.info.Needed {
			if _, ok := p.byName[name]; ok {
				continue
			}
			lib, err := r.find(p, name, o)
			if err != nil {
				return err
			}
			if same, ok := p.byReal[lib.real]; ok {
				p.byName[name] = same
				r.add(lib.path)
				continue
			}
			p.register(lib, name)
			r.add(lib.path)
			queue = append(queue, lib)
		}
	}
	return nil
}

// loadOptional loads a module as dlopen would (the main program is its
// loader). When its libraries are incomplete it is dropped with a warning,
// leaving the process as it was: the app fails only if it loads it.
func (r *resolver) loadOptional(p *process, modPath string, e *rootfs.Entry) {
	info, err := r.elfAt(e)
	if err != nil || !p.main.info.sameABI(info) {
		r.warnf("%s: left out: not a shared object for %v/%v", modPath, p.main.info.Class, p.main.info.Machine)
		return
	}
	savedNames, savedReal, savedPaths := cloneMap(p.byName), cloneMap(p.byReal), cloneMap(r.paths)
	mod := &object{path: modPath, real: e.Path, info: info, loader: p.main}
	p.register(mod)
	r.add(modPath)
	if err := r.loadNeeded(p, mod); err != nil {
		p.byName, p.byReal, r.paths = savedNames, savedReal, savedPaths
		r.warnf("%s: left out: %v", modPath, err)
	}
}

func cloneMap[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// find locates the library name needed by req, as ld.so would.
func (r *resolver) find(p *process, name string, req *object) (*object, error) {
	if strings.Contains(name, "/") {
		cand := r.abs(r.expand(p, name, req))
		if lib := r.candidate(p, cand, req); lib != nil {
			return lib, nil
		}
		return nil, fmt.Errorf("%s, needed by %s, not found", name, req.path)
	}
	dirs := r.searchDirs(p, req)
	for _, d := range dirs {
		if lib := r.candidate(p, path.Join(d, name), req); lib != nil {
			return lib, nil
		}
	}
	return nil, fmt.Errorf("%s, needed by %s, not found in [%s]", name, req.path, strings.Join(dirs, " "))
}

// candidate returns the object at cand if it is an ELF object of the
// process's ABI; anything else is skipped, as ld.so skips it.
func (r *resolver) candidate(p *process, cand string, req *object) *object {
	e, err := stat(r.fsys, cand)
	if err != nil || e == nil || !e.IsRegular() {
		return nil
	}
	info, err := r.elfAt(e)
	if err != nil || !p.main.info.sameABI(info) {
		return nil
	}
	return &object{path: rootfs.Clean(cand), real: e.Path, info: info, loader: req}
}

// searchDirs lists, in ld.so's order, where a library needed by req is
// looked for: DT_RPATH of req and its loaders (only when req has no
// DT_RUNPATH), LD_LIBRARY_PATH, req's DT_RUNPATH, the ld.so.conf
// directories (what ld.so.cache would hold), then the default directories.
func (r *resolver) searchDirs(p *process, req *object) []string {
	var dirs []string
	if len(req.info.Runpath) == 0 {
		for l := req; l != nil; l = l.loader {
			for _, d := range l.info.Rpath {
				dirs = append(dirs, r.expand(p, d, l))
			}
		}
	}
	if v, ok := r.o.getenv("LD_LIBRARY_PATH"); ok {
		for _, d := range strings.FieldsFunc(v, func(c rune) bool { return c == ':' || c == ';' }) {
			dirs = append(dirs, r.expand(p, d, p.main))
		}
	}
	for _, d := range req.info.Runpath {
		dirs = append(dirs, r.expand(p, d, req))
	}
	if p.musl {
		dirs = append(dirs, r.muslDirs(p)...)
	} else {
		dirs = append(dirs, r.ldsoConf()...)
		dirs = append(dirs, p.abi.defaultDirs()...)
	}
	seen := map[string]bool{}
	out := dirs[:0]
	for _, d := range dirs {
		d = r.abs(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// expand replaces the dynamic string tokens $ORIGIN, $LIB and $PLATFORM
// (also in ${…} form) in s, for the object o.
func (r *resolver) expand(p *process, s string, o *object) string {
	if !strings.Contains(s, "$") {
		return s
	}
	lib := p.abi.libdir
	for _, t := range p.abi.triplets {
		// Debian's ld.so expands $LIB to its multiarch directory.
		if isDir(r.fsys, "/lib/"+t) || isDir(r.fsys, "/usr/lib/"+t) {
			lib = "lib/" + t
			break
		}
	}
	return strings.NewReplacer(
		"${ORIGIN}", path.Dir(o.path), "$ORIGIN", path.Dir(o.path),
		"${LIB}", lib, "$LIB", lib,
		"${PLATFORM}", p.abi.platform, "$PLATFORM", p.abi.platform,
	).Replace(s)
}

// maxConfDepth bounds nested `include` lines of ld.so.conf.
const maxConfDepth = 8

// ldsoConf returns the directories /etc/ld.so.conf names, with its includes.
func (r *resolver) ldsoConf() []string {
	if !r.confRead {
		r.confRead = true
		r.confDirs = r.readConf("/etc/ld.so.conf", 0, map[string]bool{})
	}
	return r.confDirs
}

func (r *resolver) readConf(file string, depth int, seen map[string]bool) []string {
	if depth > maxConfDepth || seen[file] {
		return nil
	}
	seen[file] = true
	data, err := readSmallFile(r.fsys, file)
	if err != nil {
		return nil // ld.so.conf is optional, as it is for ldconfig
	}
	var dirs []string
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.FieldsFunc(line, func(c rune) bool { return strings.ContainsRune(" \t:,", c) })
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "include":
			for _, pat := range fields[1:] {
				if !path.IsAbs(pat) {
					pat = path.Join(path.Dir(file), pat)
				}
				matches, _ := glob(r.fsys, pat)
				for _, m := range matches {
					dirs = append(dirs, r.readConf(m, depth+1, seen)...)
				}
			}
		case "hwcap":
		default:
			for _, d := range fields {
				d, _, _ = strings.Cut(d, "=") // libc5-era "dir=type"
				if path.IsAbs(d) {
					dirs = append(dirs, rootfs.Clean(d))
				}
			}
		}
	}
	return dirs
}

// muslDirs is musl's search path: /etc/ld-musl-<arch>.path, or its default.
func (r *resolver) muslDirs(p *process) []string {
	data, err := readSmallFile(r.fsys, "/etc/ld-musl-"+p.abi.musl+".path")
	if err != nil {
		return muslDefaultDirs()
	}
	return strings.FieldsFunc(string(data), func(c rune) bool { return c == ':' || c == '\n' })
}
