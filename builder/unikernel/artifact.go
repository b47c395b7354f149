package unikernel

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Artifact is an image layout that booted and passed its readiness check.
type Artifact struct {
	dir    string
	owned  bool
	files  []string
	config spec.ImageConfig
}

// StateLayoutDir is the State key of the layout directory (a string).
const StateLayoutDir = "layout_dir"

// StateConfig is the State key of the image config (a spec.ImageConfig).
const StateConfig = "config"

func newArtifact(l *layout.Layout, owned bool) (*Artifact, error) {
	names := []string{spec.KernelFile, spec.InitrdFile, spec.RootfsFile, spec.ConfigFile}
	if l.HasDisk() {
		names = append(names, spec.DiskFile)
	}
	if l.HasSBOM() {
		names = append(names, spec.SBOMFile)
	}
	files := make([]string, 0, len(names))
	for _, n := range names {
		files = append(files, l.Path(n))
	}
	sort.Strings(files)
	return &Artifact{dir: l.Dir(), owned: owned, files: files, config: l.Config()}, nil
}

func (*Artifact) BuilderId() string { return BuilderID }

// Files are the layout's files.
func (a *Artifact) Files() []string { return a.files }

// Id is the layout directory.
func (a *Artifact) Id() string { return a.dir }

func (a *Artifact) String() string {
	return fmt.Sprintf("unikernel image layout %s: %s", a.dir, strings.Join(a.files, ", "))
}

// State exposes the layout directory and the image config to post-processors.
func (a *Artifact) State(name string) interface{} {
	switch name {
	case StateLayoutDir:
		return a.dir
	case StateConfig:
		return a.config
	}
	return nil
}

// Destroy removes the layout if the build wrote it; a user's layout stays.
func (a *Artifact) Destroy() error {
	if !a.owned {
		return nil
	}
	return os.RemoveAll(a.dir)
}
