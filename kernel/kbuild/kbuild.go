// Package kbuild builds kernel bundles from source: Debian's linux-source
// package (or a .deb of it, or an unpacked source tree), configured as
// tinyconfig plus the fragments of kernel/configs and the caller's, built
// reproducibly (fixed build timestamp, user and host), checked against what
// uni's init needs, and cached by the digest of those inputs, so the same
// inputs build once. See docs/kernel-bundles.md.
package kbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/kernel/configs"
)

// DefaultName is the alias of the kernel uni builds with the default
// fragments: KERNEL linux-mini.
const DefaultName = "linux-mini"

// DefaultSource is the Debian package whose source is built by default.
const DefaultSource = "linux-source-6.1"

// keyVersion changes when the way inputs become a kernel changes, so that
// old cache entries are not taken for new builds.
const keyVersion = "uni kernel build 1"

// Spec says what to build. The zero value builds linux-mini from
// DefaultSource with the default fragments.
type Spec struct {
	// Name is the alias the bundle gets (default DefaultName).
	Name string
	// Fragments are host paths of configuration fragments merged after the
	// default ones (configs.Default), in order: a later line wins.
	Fragments []string
	// Source is a Debian package name (linux-source-6.12), a .deb of one,
	// or a kernel source directory (built out of tree, left unchanged).
	// Default DefaultSource, downloaded through apt's index.
	Source string
	// Jobs is make's -j (default: the number of CPUs).
	Jobs int
	// Nice runs make under nice(1) with this increment (0: not), so that
	// a build shares the machine politely.
	Nice int
	// SourceDateEpoch is the build's timestamp (default 0, 1970-01-01). It
	// is not taken from the environment: one kernel serves images built
	// with any SOURCE_DATE_EPOCH.
	SourceDateEpoch int64
	// Log receives progress lines and the "this takes minutes" notice.
	Log io.Writer
}

// Builder is a kernel.Builder that builds DefaultName with the default spec
// (and log) when Resolve finds no linux-mini in the cache, saying that this
// takes a few minutes. It does not take any other name.
func Builder(log io.Writer) kernel.Builder {
	return func(ctx context.Context, name string, opts ...kernel.Option) (*kernel.Bundle, error) {
		if name != DefaultName {
			return nil, kernel.ErrNotFound
		}
		if log != nil {
			fmt.Fprintf(log, "kernel %s is not in the cache: building it from Debian's %s (this takes a few minutes, once; `uni kernel build` does it ahead of time)\n",
				name, DefaultSource)
		}
		return Build(ctx, Spec{Log: log}, opts...)
	}
}

// Build returns the bundle spec describes, from the cache when the same
// inputs were built before (the inputs' digest is bundle.json's build.key),
// else building it: the source is unpacked into a private work directory
// of the kernel cache, configured, checked (a *ConfigError names what is
// wrong before anything compiles) and compiled, and the bundle is renamed
// into the cache whole. Cancelling ctx stops make and removes the work
// directory. opts are the kernel cache's (WithCacheDir).
func Build(ctx context.Context, spec Spec, opts ...kernel.Option) (*kernel.Bundle, error) {
	if spec.Name == "" {
		spec.Name = DefaultName
	}
	if spec.Jobs <= 0 {
		spec.Jobs = runtime.NumCPU()
	}
	if spec.Log == nil {
		spec.Log = io.Discard
	}
	frags, err := loadFragments(spec.Fragments)
	if err != nil {
		return nil, err
	}
	src, err := findSource(ctx, spec.Source)
	if err != nil {
		return nil, err
	}
	tools, err := checkTools(ctx)
	if err != nil {
		return nil, err
	}
	b := &build{spec: spec, frags: frags, src: src, tools: tools, stamp: buildTimestamp(spec.SourceDateEpoch)}
	key := b.key()
	opts = append(append([]kernel.Option{}, opts...), kernel.WithName(spec.Name))
	if got, err := kernel.LookupBuild(key, opts...); err == nil {
		fmt.Fprintf(spec.Log, "kernel %s: built before from the same inputs (%s), taken from the cache\n", spec.Name, short(key))
		return got, nil
	} else if !errors.Is(err, kernel.ErrNotFound) {
		return nil, err
	}
	start := time.Now()
	out, err := kernel.MakeBuild(ctx, key, b.run, opts...)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(spec.Log, "kernel %s %s built in %s: %s\n", spec.Name, out.Desc.Release, time.Since(start).Round(time.Second), out.Desc.Digest)
	return out, nil
}

// fragment is one configuration fragment's bytes.
type fragment struct {
	name string
	data []byte
}

// loadFragments reads the default fragments and then the caller's, each
// parsed once here so that a bad line fails before any download.
func loadFragments(extra []string) ([]fragment, error) {
	var out []fragment
	for _, name := range configs.Default() {
		data, err := configs.FS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, fragment{name: name, data: data})
	}
	for _, p := range extra {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("kernel config fragment: %w", err)
		}
		out = append(out, fragment{name: p, data: data})
	}
	for _, f := range out {
		if _, err := ParseConfig(f.name, bytes.NewReader(f.data)); err != nil {
			return nil, fmt.Errorf("kernel config fragment %w", err)
		}
	}
	return out, nil
}

// build is one Build's settled inputs.
type build struct {
	spec  Spec
	frags []fragment
	src   *source
	tools toolchain
	stamp string
}

// key is the digest of everything the kernel's bytes depend on.
func (b *build) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\narch x86_64\nsource %s\nbase tinyconfig\n", keyVersion, b.src.id)
	for _, f := range b.frags {
		sum := sha256.Sum256(f.data)
		fmt.Fprintf(h, "fragment %s\n", hex.EncodeToString(sum[:]))
	}
	fmt.Fprintf(h, "compiler %s\nbinutils %s\ntimestamp %s\n", b.tools.compiler, b.tools.binutils, b.stamp)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// run is MakeBuild's build step: unpack, configure, check, compile, in work.
func (b *build) run(ctx context.Context, work string) (*kernel.Built, error) {
	log := b.spec.Log
	fmt.Fprintf(log, "building kernel %s from %s %s with %d jobs (about 10 minutes on 2 CPUs)\n", b.spec.Name, b.src.name, b.src.version, b.spec.Jobs)
	srcDir, err := b.src.unpack(ctx, work, log)
	if err != nil {
		return nil, err
	}
	objDir := srcDir
	if b.src.kind == "dir" {
		objDir = filepath.Join(work, "obj")
		if err := os.Mkdir(objDir, 0o755); err != nil {
			return nil, err
		}
	}
	m := &maker{src: srcDir, obj: objDir, env: b.env(), log: log, nice: b.spec.Nice}
	if err := b.configure(ctx, m, work); err != nil {
		return nil, err
	}
	if err := m.compile(ctx, b.spec.Jobs); err != nil {
		return nil, err
	}
	return b.collect(work, objDir)
}

// env is make's whole environment: nothing of the caller's but PATH and
// HOME, so that KCFLAGS, ARCH or a locale cannot change the bytes.
func (b *build) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"LC_ALL=C", "TZ=UTC",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", b.spec.SourceDateEpoch),
		"KBUILD_BUILD_TIMESTAMP=" + b.stamp,
		"KBUILD_BUILD_USER=uni",
		"KBUILD_BUILD_HOST=uni",
		"KBUILD_BUILD_VERSION=1",
	}
}

// buildTimestamp is KBUILD_BUILD_TIMESTAMP for an epoch, as uname -v shows it.
func buildTimestamp(epoch int64) string {
	return time.Unix(epoch, 0).UTC().Format("Mon Jan 2 15:04:05 UTC 2006")
}

// configure writes the .config: tinyconfig (allnoconfig with the source's
// tiny fragments) with our fragments merged in, in one Kconfig run, and
// checks the result.
func (b *build) configure(ctx context.Context, m *maker, work string) error {
	var all bytes.Buffer
	for _, base := range []string{"kernel/configs/tiny-base.config", "kernel/configs/tiny.config", "arch/x86/configs/tiny.config"} {
		data, err := os.ReadFile(filepath.Join(m.src, base))
		if errors.Is(err, fs.ErrNotExist) && base == "kernel/configs/tiny-base.config" {
			continue // older sources: tiny.config alone
		}
		if err != nil {
			return fmt.Errorf("kernel source: tinyconfig: %w", err)
		}
		all.Write(data)
		all.WriteByte('\n')
	}
	var asked []Assignment
	for _, f := range b.frags {
		as, err := ParseConfig(f.name, bytes.NewReader(f.data))
		if err != nil {
			return err
		}
		asked = append(asked, as...)
		all.Write(f.data)
		all.WriteByte('\n')
	}
	allconfig := filepath.Join(work, "allconfig")
	if err := os.WriteFile(allconfig, all.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(b.spec.Log, "configuring: tinyconfig + %s\n", strings.Join(b.fragmentNames(), " + "))
	if err := m.run(ctx, "configuring", "KCONFIG_ALLCONFIG="+allconfig, "allnoconfig"); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(m.obj, ".config"))
	if err != nil {
		return err
	}
	defer f.Close()
	resolved, err := ParseConfig(".config", f)
	if err != nil {
		return err
	}
	return CheckConfig(resolved, asked)
}

func (b *build) fragmentNames() []string {
	var names []string
	for _, f := range b.frags {
		names = append(names, filepath.Base(f.name))
	}
	return names
}

// collect puts what Import needs (bzImage and .config) into work/kernel
// and describes the build.
func (b *build) collect(work, objDir string) (*kernel.Built, error) {
	dir := filepath.Join(work, "kernel")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	for from, to := range map[string]string{"arch/x86/boot/bzImage": "bzImage", ".config": ".config"} {
		if err := os.Rename(filepath.Join(objDir, from), filepath.Join(dir, to)); err != nil {
			return nil, fmt.Errorf("kernel build: %w", err)
		}
	}
	builtin, err := readBuiltinModinfo(filepath.Join(objDir, "modules.builtin.modinfo"))
	if err != nil {
		return nil, err
	}
	config, err := os.ReadFile(filepath.Join(dir, ".config"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(config)
	info := kernel.BuildInfo{
		SourceVersion: b.src.version,
		Base:          "tinyconfig",
		ConfigDigest:  "sha256:" + hex.EncodeToString(sum[:]),
		Compiler:      b.tools.compiler,
		Timestamp:     b.stamp,
	}
	for _, f := range b.frags {
		s := sha256.Sum256(f.data)
		info.Fragments = append(info.Fragments, kernel.Fragment{Name: filepath.Base(f.name), Digest: "sha256:" + hex.EncodeToString(s[:])})
	}
	return &kernel.Built{
		Dir:     dir,
		Builtin: builtin,
		Name:    b.spec.Name,
		Version: b.src.version,
		Source:  b.src.describe(),
		Build:   info,
	}, nil
}

// readBuiltinModinfo names the modules built into the kernel, from the
// modules.builtin.modinfo kbuild writes ("name.key=value\0" records), with
// '-' spelled '_' as the kernel does. The image writer needs them: a
// default module that is built in needs no .ko.
func readBuiltinModinfo(p string) ([]string, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, rec := range bytes.Split(data, []byte{0}) {
		name, _, ok := bytes.Cut(rec, []byte{'.'})
		if ok && len(name) > 0 {
			seen[strings.ReplaceAll(string(name), "-", "_")] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// toolchain identifies the compiler and linker, which the bytes depend on.
type toolchain struct {
	compiler, binutils string
}

// buildTools are the host programs a kernel build runs, and the Debian
// packages that have them.
func buildTools() map[string]string {
	return map[string]string{
		"make": "make", "gcc": "gcc", "ld": "binutils", "flex": "flex", "bison": "bison",
		"bc": "bc", "perl": "perl", "lz4": "lz4", "tar": "tar", "xz": "xz-utils",
	}
}

// checkTools finds the build tools, or names the packages that are missing.
func checkTools(ctx context.Context) (toolchain, error) {
	var missing []string
	for prog, pkg := range buildTools() {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, pkg)
		}
	}
	// objtool links against libelf.
	if _, err := os.Stat("/usr/include/libelf.h"); err != nil {
		missing = append(missing, "libelf-dev")
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return toolchain{}, fmt.Errorf("building a kernel needs these Debian packages: apt-get install %s", strings.Join(missing, " "))
	}
	first := func(prog string) (string, error) {
		out, err := exec.CommandContext(ctx, prog, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("%s --version: %w", prog, err)
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(line), nil
	}
	var t toolchain
	var err error
	if t.compiler, err = first("gcc"); err != nil {
		return t, err
	}
	if t.binutils, err = first("ld"); err != nil {
		return t, err
	}
	return t, nil
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
