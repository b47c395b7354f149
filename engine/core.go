package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/closure"
	"github.com/uniforge/packer-plugin-unikernel/image"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
	"github.com/uniforge/packer-plugin-unikernel/version"
)

// This file is the engine's core: the steps every front door runs once it
// has the last stage's root. The CLI (Build, below a Unifile), the BuildKit
// frontend (a stage root mounted as a directory, its config from
// dockerfile2llb) and the Packer builder all call them, so they all cut
// the same unikernel from the same root:
//
//	Cut → ResolveKernel → CheckMemory → Assemble

// FinalStage is the last stage of a build as the core sees it.
type FinalStage struct {
	// Root is the stage's whole root: its base and what the stage wrote
	// over it. The entrypoint's closure is cut from it. Nil is empty.
	Root rootfs.FS
	// Added is what the stage itself wrote over its base (its COPY and
	// ADD; under BuildKit also what its RUNs wrote). It is kept whole,
	// whether the closure needs it or not. Nil is nothing.
	Added rootfs.FS
	// Settings is the stage's image config with its base image's merged
	// in (Docker's inheritance), and the unikernel keywords.
	Settings unifile.Settings
}

// Plan is what the last stage becomes: the unikernel's root and its image
// config, ready for Assemble.
type Plan struct {
	Root     *rootfs.Tree
	Config   spec.ImageConfig
	Kernel   string // the kernel bundle asked for (KERNEL)
	Warnings []string
}

// Step names the part of a stage a core error is about, so that a front
// door can point at the line (Unifile) or field that set it.
type Step string

const (
	StepEntrypoint Step = "entrypoint" // ENTRYPOINT/CMD and the closure of its program
	StepInclude    Step = "include"    // an INCLUDE path
	StepAdded      Step = "added"      // a file the stage added (COPY, ADD, RUN)
	StepUser       Step = "user"       // USER
	StepWorkdir    Step = "workdir"    // WORKDIR
	StepMemory     Step = "memory"     // MEMORY against the kernel
	StepKernel     Step = "kernel"     // KERNEL: resolving the bundle
)

// StepError is a core error about one step; Path is the file it concerns,
// when there is one (an INCLUDE path, an added file).
type StepError struct {
	Step Step
	Path string
	Err  error
}

func (e *StepError) Error() string { return e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

func stepErr(s Step, p string, err error) error { return &StepError{Step: s, Path: p, Err: err} }

// Cut cuts the unikernel's root out of st: the entrypoint's closure, all
// that the stage added, the INCLUDE paths, and what the init needs in
// every root. It resolves USER against the root's user database and sets
// HOME as Docker does.
func Cut(ctx context.Context, st FinalStage) (*Plan, error) {
	s := st.Settings
	argv := s.Argv()
	if len(argv) == 0 {
		return nil, stepErr(StepEntrypoint, "", errors.New("no ENTRYPOINT or CMD in the last stage or its base image: nothing to run"))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkAdded(st.Added, s.Includes); err != nil {
		return nil, err
	}
	if mp := underMountPoint(s.WorkingDir); mp != "" {
		return nil, stepErr(StepWorkdir, s.WorkingDir, fmt.Errorf("WORKDIR %s: %s is a mount point of the init (a fresh %s at boot), so the directory would not exist at run time", s.WorkingDir, mp, mountKind(mp)))
	}
	fsys := st.Root
	if fsys == nil {
		fsys = rootfs.NewTree()
	}
	for _, inc := range s.Includes {
		if _, _, err := rootfs.Resolve(fsys, inc); err != nil {
			return nil, stepErr(StepInclude, inc, fmt.Errorf("INCLUDE %s: %w", inc, err))
		}
	}
	res, err := closure.Resolve(ctx, fsys, argv,
		closure.WithEnv(s.Env),
		closure.WithWorkdir(s.WorkingDirOrRoot()),
		closure.WithExtraPaths(s.Includes...))
	if err != nil {
		return nil, stepErr(StepEntrypoint, "", err)
	}
	tree, err := res.Tree(ctx, fsys)
	if err != nil {
		return nil, stepErr(StepEntrypoint, "", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := keepAdded(tree, st.Added); err != nil {
		return nil, stepErr(StepAdded, "", err)
	}
	if err := addRuntimeFiles(tree, s.WorkingDir); err != nil {
		return nil, err
	}
	uid, gid, err := resolveUser(fsys, s.User)
	if err != nil {
		return nil, stepErr(StepUser, "", fmt.Errorf("USER %s: %w", s.User, err))
	}
	env := s.Env
	if !hasEnv(env, "HOME") {
		env = append(append([]string{}, env...), "HOME="+homeDir(fsys, uid))
	}
	argv[0] = res.Exe
	p := &Plan{Root: tree, Kernel: s.Kernel, Warnings: res.Warnings}
	p.Config = spec.ImageConfig{
		Entrypoint:   argv,
		Env:          env,
		WorkingDir:   cleanDir(s.WorkingDir),
		ExposedPorts: s.ExposedPorts,
		MemoryBytes:  s.MemoryBytes,
		CPUs:         s.CPUs,
		Labels:       s.Labels,
	}
	if uid != 0 || gid != 0 {
		p.Config.User = &spec.User{UID: uid, GID: gid}
	}
	return p, nil
}

// checkAdded refuses files that the stage adds, or INCLUDEs, below a
// directory the init mounts over at boot: they would be in rootfs.img and
// hidden in the running guest.
func checkAdded(added rootfs.FS, includes []string) error {
	for _, inc := range includes {
		if mp := underMountPoint(inc); mp != "" {
			return stepErr(StepInclude, inc, fmt.Errorf("INCLUDE %s: %s is a mount point of the init (a fresh %s at boot), so nothing under it is visible at run time", inc, mp, mountKind(mp)))
		}
	}
	if added == nil {
		return nil
	}
	for _, mp := range spec.MountPoints {
		kids, err := added.ReadDir(mp)
		if err != nil || len(kids) == 0 {
			continue
		}
		p := kids[0].Path
		return stepErr(StepAdded, p, fmt.Errorf("%s: %s is a mount point of the init (a fresh %s at boot), so files put there at build time are hidden at run time; put them elsewhere (or write them at run time)", p, mp, mountKind(mp)))
	}
	return nil
}

// underMountPoint returns the mount point strictly above p, or "".
func underMountPoint(p string) string {
	p = rootfs.Clean(p)
	for _, mp := range spec.MountPoints {
		if strings.HasPrefix(p, mp+"/") {
			return mp
		}
	}
	return ""
}

func mountKind(mp string) string {
	switch mp {
	case "/dev":
		return "devtmpfs"
	case "/proc":
		return "proc"
	case "/sys":
		return "sysfs"
	}
	return "tmpfs"
}

// keepAdded copies every entry of added into tree, over what the closure
// put there (a directory already there stays as it is).
func keepAdded(tree *rootfs.Tree, added rootfs.FS) error {
	if added == nil {
		return nil
	}
	var walk func(dir string) error
	walk = func(dir string) error {
		kids, err := added.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range kids {
			if old, ok := tree.Get(e.Path); !(ok && old.IsDir() && e.IsDir()) {
				if err := tree.Add(*e); err != nil {
					return err
				}
			}
			if e.IsDir() {
				if err := walk(e.Path); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("/")
}

// addRuntimeFiles adds what the init needs in every root: its mount
// points, the working directory, and an /etc/resolv.conf and /etc/hosts to
// bind the guest's own over at boot.
func addRuntimeFiles(t *rootfs.Tree, workdir string) error {
	dirs := append([]string{}, spec.MountPoints...)
	if workdir != "" {
		dirs = append(dirs, workdir)
	}
	for _, d := range dirs {
		if e, _, err := rootfs.Resolve(t, d); err == nil && e.IsDir() {
			continue
		}
		if err := t.Add(rootfs.Entry{Path: d, Mode: fs.ModeDir | 0o755, Origin: rootfs.Generated}); err != nil {
			return err
		}
	}
	for _, f := range []string{spec.ResolvConfPath, spec.HostsPath} {
		if _, _, err := rootfs.Resolve(t, f); err == nil {
			continue
		}
		if e, ok := t.Get(f); ok && e.IsSymlink() {
			t.Remove(f) // a dangling link (to systemd-resolved, say)
		}
		if err := t.Add(rootfs.Entry{Path: f, Mode: 0o644, Data: []byte{}, Origin: rootfs.Generated}); err != nil {
			return err
		}
	}
	return nil
}

// cleanDir cleans an absolute directory ("/app/" as BuildKit keeps it is
// "/app" in config.json), and leaves "" alone.
func cleanDir(d string) string {
	if d == "" {
		return ""
	}
	return path.Clean(d)
}

// homeDir is HOME for uid as Docker sets it: the user's home in the root's
// /etc/passwd, else /root for root and / for anyone else.
func homeDir(fsys rootfs.FS, uid uint32) string {
	if fields, err := lookupByID(fsys, "/etc/passwd", uid); err == nil && len(fields) >= 6 && path.IsAbs(fields[5]) {
		return path.Clean(fields[5])
	}
	if uid == 0 {
		return "/root"
	}
	return "/"
}

// ResolveKernel finds the kernel bundle a plan asks for.
func ResolveKernel(ctx context.Context, p *Plan, opts ...kernel.Option) (*kernel.Bundle, error) {
	b, err := kernel.Resolve(ctx, p.Kernel, opts...)
	if err != nil {
		return nil, stepErr(StepKernel, "", fmt.Errorf("kernel %s: %w", p.Kernel, err))
	}
	return b, nil
}

// CheckMemory refuses a memory size the kernel cannot boot in, which
// would otherwise end in a silent reset at boot.
func CheckMemory(b *kernel.Bundle, p *Plan) error {
	need, err := b.MinMemory()
	if err != nil {
		return stepErr(StepMemory, "", err)
	}
	if p.Config.MemoryBytes < need {
		return stepErr(StepMemory, "", fmt.Errorf("MEMORY %d MiB is too small for kernel %s: it needs at least %d MiB to boot", p.Config.MemoryBytes>>20, b.Desc.Release, need>>20))
	}
	return nil
}

// Output says where and how a plan is written.
type Output struct {
	Dir             string
	Disk            bool  // also write disk.img
	DataSize        int64 // bytes of an empty data partition on disk.img
	SourceDateEpoch int64 // every timestamp in every output
	// Name is the app's name in sbom.spdx.json (default: the entrypoint's
	// program name).
	Name string
	// InPlace writes into Dir, an empty directory the caller owns and
	// throws away on error (the BuildKit frontend's output mount), instead
	// of a temporary sibling renamed over Dir.
	InPlace bool
}

// Assemble writes the image layout of p on bundle b.
func Assemble(ctx context.Context, p *Plan, b *kernel.Bundle, out Output) (*spec.ImageConfig, error) {
	cfg := p.Config
	cfg.Build = spec.BuildInfo{SourceDateEpoch: out.SourceDateEpoch, Tool: "uni " + version.Version()}
	in := image.Input{
		Root:       p.Root,
		Config:     cfg,
		Bundle:     b,
		KernelName: p.Kernel,
		Disk:       out.Disk,
		DataSize:   out.DataSize,
		ModTime:    out.SourceDateEpoch,
		Name:       out.Name,
	}
	if out.InPlace {
		return image.WriteLayout(ctx, in, out.Dir)
	}
	return image.Assemble(ctx, in, out.Dir)
}
