package engine

import (
	"context"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/uniforge/packer-plugin-unikernel/baseimage"
	"github.com/uniforge/packer-plugin-unikernel/closure"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// finalPlan is what the last stage becomes.
type finalPlan struct {
	settings   unifile.Settings // merged with the base image's config
	root       *rootfs.Tree
	config     spec.ImageConfig
	kernelLine unifile.Location
	memoryLine unifile.Location
	warnings   []string
}

// finalRoot cuts the unikernel's root out of the last stage: the
// entrypoint's closure, everything COPY put there, and the INCLUDE paths.
func (b *builder) finalRoot(ctx context.Context, st *unifile.Stage, root *stageRoot) (*finalPlan, error) {
	p := &finalPlan{settings: mergeBase(st.Settings, root.image), kernelLine: st.Location, memoryLine: st.Location}
	for _, ins := range st.Instructions {
		switch ins.(type) {
		case *unifile.Kernel:
			p.kernelLine = ins.Pos()
		case *unifile.Memory:
			p.memoryLine = ins.Pos()
		}
	}
	s := &p.settings
	argv := s.Argv()
	if len(argv) == 0 {
		return nil, b.lineErr(st.Location, "no ENTRYPOINT or CMD in the last stage or its base image: nothing to run")
	}
	fsys := root.view()
	res, err := closure.Resolve(ctx, fsys, argv,
		closure.WithEnv(s.Env),
		closure.WithWorkdir(s.WorkingDirOrRoot()),
		closure.WithExtraPaths(s.Includes...))
	if err != nil {
		return nil, b.lineErr(entrypointLine(st), "%v", err)
	}
	p.warnings = res.Warnings
	tree, err := res.Tree(ctx, fsys)
	if err != nil {
		return nil, b.lineErr(entrypointLine(st), "%v", err)
	}
	// Everything COPY wrote stays, whether the closure saw it or not.
	err = root.upper.Walk(func(e *rootfs.Entry) error {
		if e.Path == "/" {
			return nil
		}
		if old, ok := tree.Get(e.Path); ok && old.IsDir() && e.IsDir() {
			return nil
		}
		return tree.Add(*e)
	})
	if err != nil {
		return nil, err
	}
	if err := addRuntimeDirs(tree, s.WorkingDir); err != nil {
		return nil, err
	}
	uid, gid, err := resolveUser(fsys, s.User)
	if err != nil {
		return nil, b.lineErr(userLine(st), "USER %s: %v", s.User, err)
	}
	p.root = tree
	argv[0] = res.Exe
	p.config = spec.ImageConfig{
		Entrypoint:   argv,
		Env:          s.Env,
		WorkingDir:   s.WorkingDir,
		ExposedPorts: s.ExposedPorts,
		MemoryBytes:  s.MemoryBytes,
		CPUs:         s.CPUs,
		Labels:       s.Labels,
	}
	if uid != 0 || gid != 0 {
		p.config.User = &spec.User{UID: uid, GID: gid}
	}
	return p, nil
}

// addRuntimeDirs adds what the init needs in every root: its mount points,
// the working directory, and an /etc/resolv.conf to bind the DHCP answer over.
func addRuntimeDirs(t *rootfs.Tree, workdir string) error {
	dirs := append([]string{}, spec.MountPoints...)
	if workdir != "" {
		dirs = append(dirs, workdir)
	}
	for _, d := range dirs {
		if e, _, err := rootfs.Resolve(t, d); err == nil && e.IsDir() {
			continue
		}
		if err := t.Add(rootfs.Entry{Path: d, Mode: fs.ModeDir | 0o755}); err != nil {
			return err
		}
	}
	if _, _, err := rootfs.Resolve(t, "/etc/resolv.conf"); err != nil {
		if e, ok := t.Get("/etc/resolv.conf"); ok && e.IsSymlink() {
			t.Remove("/etc/resolv.conf") // a dangling link (to systemd-resolved, say)
		}
		return t.Add(rootfs.Entry{Path: "/etc/resolv.conf", Mode: 0o644, Data: []byte{}})
	}
	return nil
}

// mergeBase applies Docker's inheritance from a base image's config: its
// env comes first, its entrypoint and cmd hold unless the stage sets them
// (an ENTRYPOINT of the stage drops the base's CMD), its workdir and user
// hold unless replaced, its exposed ports add to the stage's.
func mergeBase(s unifile.Settings, img *baseimage.Image) unifile.Settings {
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

// entrypointLine is where the program to run was named, for errors about it.
func entrypointLine(st *unifile.Stage) unifile.Location {
	loc := st.Location
	for _, ins := range st.Instructions {
		switch ins.(type) {
		case *unifile.Entrypoint, *unifile.Cmd:
			loc = ins.Pos()
		}
	}
	return loc
}

func userLine(st *unifile.Stage) unifile.Location {
	loc := st.Location
	for _, ins := range st.Instructions {
		if _, ok := ins.(*unifile.User); ok {
			loc = ins.Pos()
		}
	}
	return loc
}
