package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// kernelTree is what Import found in a source directory.
type kernelTree struct {
	kernel     string // host path of the kernel image
	release    string // uname -r, from the image's header
	arch       string // "amd64" or "i386"
	modulesDir string // host path of lib/modules/<release>, or "" for a kernel without modules
	config     string // host path of the kernel's .config, or ""
}

// kernelImageGlobs are where a kernel image may sit in a source directory:
// an installed root (boot/vmlinuz-<rel>), a flat directory, or a build tree.
var kernelImageGlobs = []string{
	"boot/vmlinuz-*", "boot/vmlinuz", "boot/bzImage",
	"vmlinuz-*", "vmlinuz", "bzImage", "arch/x86/boot/bzImage",
}

// moduleRootDirs hold lib/modules/<release>/ trees (usr/lib for merged-/usr).
var moduleRootDirs = []string{"lib/modules", "usr/lib/modules"}

// findKernelTree locates the kernel image and its modules below root.
func findKernelTree(root string) (*kernelTree, error) {
	var images []string
	for _, g := range kernelImageGlobs {
		matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(g)))
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				images = append(images, m)
			}
		}
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%s: no kernel image (looked for %s)", root, strings.Join(kernelImageGlobs, ", "))
	}
	releases := map[string]string{} // release → image path
	for _, img := range images {
		rel, _, err := readBzImageRelease(img)
		if err != nil {
			return nil, err
		}
		if _, seen := releases[rel]; !seen {
			releases[rel] = img
		}
	}
	moduleDirs := map[string]string{} // release → lib/modules/<release>
	for _, d := range moduleRootDirs {
		entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil {
			continue
		}
		for _, e := range entries {
			p := filepath.Join(root, filepath.FromSlash(d), e.Name())
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				if _, seen := moduleDirs[e.Name()]; !seen {
					moduleDirs[e.Name()] = p
				}
			}
		}
	}
	release, err := pickRelease(root, releases, moduleDirs)
	if err != nil {
		return nil, err
	}
	t := &kernelTree{kernel: releases[release], release: release, modulesDir: moduleDirs[release]}
	if _, t.arch, err = readBzImageRelease(t.kernel); err != nil {
		return nil, err
	}
	for _, c := range []string{"boot/config-" + release, "config-" + release, ".config"} {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(c))); err == nil && fi.Mode().IsRegular() {
			t.config = filepath.Join(root, filepath.FromSlash(c))
			break
		}
	}
	if t.modulesDir == "" && len(moduleDirs) > 0 {
		return nil, fmt.Errorf("%s: kernel %s is release %s but the modules are for %s",
			root, t.kernel, release, strings.Join(sortedKeys(moduleDirs), ", "))
	}
	return t, nil
}

// pickRelease chooses the one kernel release that a source holds.
func pickRelease(root string, images, moduleDirs map[string]string) (string, error) {
	if len(images) == 1 {
		for rel := range images {
			return rel, nil
		}
	}
	var both []string
	for rel := range images {
		if moduleDirs[rel] != "" {
			both = append(both, rel)
		}
	}
	if len(both) == 1 {
		return both[0], nil
	}
	return "", fmt.Errorf("%s: several kernels (%s): import a directory holding one", root, strings.Join(sortedKeys(images), ", "))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
