package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/internal/flock"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// The output directory of a build is the one place where uni replaces
// something that already exists, so it replaces only what it can tell is
// its own: an empty directory, or one holding nothing but an image layout
// (recognised by its files, not by its name). It never replaces the build
// context, an ancestor of it, the working directory, $HOME or /, whatever
// they hold. Assemble writes into a temporary sibling, ".DIR.tmp-N", which
// it holds an flock on while it lives, so that a later build can tell the
// temporary directory of a killed build (unlocked) from a live one.

// maxConfigBytes bounds how much of a config.json is read to recognise a
// layout: a real one is a few KiB.
const maxConfigBytes = 1 << 20

// OutputError is a refusal to write an image layout to Dir.
type OutputError struct {
	Dir    string // the output path as given
	Reason string
}

func (e *OutputError) Error() string {
	return fmt.Sprintf("output %s: %s", e.Dir, e.Reason)
}

// isLayoutFile reports whether name is a file an image layout of ours holds.
func isLayoutFile(name string) bool {
	return slices.Contains(layout.Required, name) || slices.Contains(layout.Optional, name)
}

// partialFile matches the temporary name under which a layout file is being
// written (internal/atomicfile: ".NAME.tmp-N").
var partialFile = regexp.MustCompile(`^\.(.+)\.tmp-[0-9]+$`)

// isPartialLayoutFile reports whether name is a layout file being written.
func isPartialLayoutFile(name string) bool {
	m := partialFile.FindStringSubmatch(name)
	return m != nil && isLayoutFile(m[1])
}

// PrepareOutput checks, before a build starts, that an image layout may be
// written to dir: dir does not exist, or is an empty directory, or holds
// nothing but an earlier image layout; and it is not, and does not contain,
// any of protect (give the build context and the Unifile), the working
// directory, $HOME or /. A refusal is an *OutputError naming dir and the
// first entry that is not ours. Assemble checks again when it replaces dir,
// so the check holds even if dir changes meanwhile.
func PrepareOutput(dir string, protect ...string) error {
	if err := checkOutputPath(dir, protect); err != nil {
		return err
	}
	return checkReplaceable(dir, dir)
}

// WriteOutput writes an image layout to dir as Assemble does: fill writes
// the files into a temporary directory beside dir, which then replaces dir
// only if dir is empty or an earlier image layout (PrepareOutput's rules,
// checked again at the rename). A failed fill leaves dir as it was and
// nothing beside it.
func WriteOutput(dir string, fill func(tmp string) error) error {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, release, err := beginOutput(dir)
	if err != nil {
		return err
	}
	defer release()
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return replaceDir(tmp, dir)
}

// checkOutputPath refuses an output path that is, or contains, one of the
// protected paths.
func checkOutputPath(dir string, protect []string) error {
	out, err := realPath(dir)
	if err != nil {
		return &OutputError{Dir: dir, Reason: err.Error()}
	}
	type guarded struct{ path, what string }
	var guard []guarded
	for _, p := range protect {
		guard = append(guard, guarded{p, ""}) // named by its real path below
	}
	if wd, err := os.Getwd(); err == nil {
		guard = append(guard, guarded{wd, "the working directory"})
	}
	if home, err := os.UserHomeDir(); err == nil {
		guard = append(guard, guarded{home, "your home directory"})
	}
	guard = append(guard, guarded{"/", "the root directory"})
	resolved := make([]string, len(guard))
	for i, g := range guard {
		if resolved[i], err = realPath(g.path); err != nil {
			return &OutputError{Dir: dir, Reason: fmt.Sprintf("resolve %s: %v", g.path, err)}
		}
		if g.what == "" {
			guard[i].what = resolved[i]
		}
		if resolved[i] == out {
			return &OutputError{Dir: dir, Reason: "it is " + guard[i].what + ", which a build never replaces; choose another output directory"}
		}
	}
	for i, g := range guard {
		if within(resolved[i], out) {
			return &OutputError{Dir: dir, Reason: "it contains " + g.what + ", which a build never replaces; choose another output directory"}
		}
	}
	return nil
}

// realPath is p absolute, with the symbolic links of its existing part
// resolved, so that two spellings of one directory compare equal.
func realPath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether p is strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkReplaceable refuses anything at path but nothing, an empty
// directory, or an image layout; name is the output as the user gave it.
func checkReplaceable(name, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &OutputError{Dir: name, Reason: err.Error()}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &OutputError{Dir: name, Reason: "it is a symbolic link; name the directory itself"}
	case !fi.IsDir():
		return &OutputError{Dir: name, Reason: "it is a file, not a directory; a build never replaces it"}
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return &OutputError{Dir: name, Reason: err.Error()}
	}
	if len(ents) == 0 {
		return nil
	}
	for _, e := range ents {
		if !isLayoutFile(e.Name()) || !e.Type().IsRegular() {
			return &OutputError{Dir: name, Reason: fmt.Sprintf("it holds %q, which is not part of an image layout: a build replaces only an empty directory or an earlier image layout (remove it yourself, or choose another output directory)", e.Name())}
		}
	}
	return checkLayoutConfig(name, filepath.Join(path, spec.ConfigFile))
}

// checkLayoutConfig refuses a directory whose config.json is missing or
// not an image config of ours.
func checkLayoutConfig(name, p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &OutputError{Dir: name, Reason: "it holds files named like an image layout's but no config.json: a build replaces only an empty directory or an earlier image layout"}
	}
	if err != nil {
		return &OutputError{Dir: name, Reason: err.Error()}
	}
	defer f.Close()
	var cfg struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	if err := json.NewDecoder(io.LimitReader(f, maxConfigBytes)).Decode(&cfg); err != nil || cfg.SchemaVersion != 1 {
		return &OutputError{Dir: name, Reason: "its config.json is not an image config (schemaVersion 1): a build replaces only an empty directory or an earlier image layout"}
	}
	return nil
}

// beginOutput checks dir, removes the stale temporary directories that
// killed builds left beside it, and makes the temporary directory the
// layout is written into, locked for as long as release is not called.
func beginOutput(dir string) (tmp string, release func(), err error) {
	if err := PrepareOutput(dir); err != nil {
		return "", nil, err
	}
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	cleanStale(parent, base)
	for range 10 {
		tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
		if err != nil {
			return "", nil, err
		}
		f, ok := lockDir(tmp)
		if !ok {
			// Another build's cleanStale took it between mkdir and lock,
			// and removes it: take another name.
			continue
		}
		return tmp, func() { f.Close() }, nil
	}
	return "", nil, fmt.Errorf("output %s: could not make a temporary directory beside it", dir)
}

// lockDir opens dir and takes an exclusive flock on it without waiting; it
// fails if another process holds the lock or dir was removed meanwhile.
func lockDir(dir string) (*os.File, bool) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, false
	}
	if ok, err := flock.TryLock(f); !ok || err != nil {
		f.Close()
		return nil, false
	}
	held, err1 := f.Stat()
	now, err2 := os.Lstat(dir)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, false
	}
	return f, true
}

// staleName matches the temporary directories Assemble makes beside an
// output DIR (".DIR.tmp-N") and the name replaceDir moves an older layout
// to (".DIR.tmp-N.old").
func staleName(base string) *regexp.Regexp {
	return regexp.MustCompile(`^\.` + regexp.QuoteMeta(base) + `\.tmp-[0-9]+(\.old)?$`)
}

// cleanStale removes the temporary directories of dead builds of
// parent/base: ours by name, unlocked (no live build holds them), and
// holding only the files a build writes there. A directory holding
// anything else is left alone, whatever its age: uni deletes only what it
// wrote. Failures are not errors: the build goes on.
func cleanStale(parent, base string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	re := staleName(base)
	for _, e := range ents {
		if !e.IsDir() || !re.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		f, ok := lockDir(p)
		if !ok {
			continue // a live build's
		}
		removeOurs(p)
		f.Close()
	}
}

// removeOurs removes dir if it holds nothing but the files a build writes
// (layout files and their partial writes): those by name, then dir, which
// fails if anything else appeared meanwhile. It reports whether dir is gone.
func removeOurs(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !(isLayoutFile(e.Name()) || isPartialLayoutFile(e.Name())) {
			return false
		}
	}
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return os.Remove(dir) == nil
}

// replaceDir puts the finished directory tmp at dir, replacing what is
// there only if it is empty or an earlier image layout, checked again now
// (the check before the build may be stale) and once more after moving it
// aside, where nothing else writes it by name. The older layout's files are
// removed by name, never recursively.
func replaceDir(tmp, dir string) error {
	if err := checkOutputPath(dir, nil); err != nil {
		return err
	}
	if err := checkReplaceable(dir, dir); err != nil {
		return err
	}
	f, ok := lockDir(dir)
	if !ok {
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			// Nothing there: rename fails rather than replace anything
			// but an empty directory that appears meanwhile.
			return os.Rename(tmp, dir)
		}
		return &OutputError{Dir: dir, Reason: "another build is writing it"}
	}
	defer f.Close()
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := checkReplaceable(dir, old); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("%w; and moving it back from %s failed: %w", err, old, rerr)
		}
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("%w; and moving the older layout back from %s failed: %w", err, old, rerr)
		}
		return err
	}
	if !removeOurs(old) {
		return &OutputError{Dir: dir, Reason: fmt.Sprintf("the new layout is in place, but something was added to the older one meanwhile: it is kept at %s", old)}
	}
	return nil
}
