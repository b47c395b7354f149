package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// The assembly step runs inside the frontend image, under BuildKit, with
// the stage's root, what the stage added, and the kernel bundle mounted
// read-only. It calls the same engine core as `uni build` (Cut,
// CheckMemory, Assemble), so both engines write the same bytes.

// Request is what the frontend asks of the assembly step: the target
// stage's settings as the Unifile gives them, and what the core needs
// beyond them. It travels as a file in a mount, never on a command line.
type Request struct {
	Settings unifile.Settings `json:"settings"`
	// KernelName is the KERNEL value, recorded in config.json as uni build does.
	KernelName      string `json:"kernelName"`
	SourceDateEpoch int64  `json:"sourceDateEpoch"`
	// Name names the app in the SBOM.
	Name string `json:"name"`
	// BaseImage is the stage's base image reference, and BaseImageDigest
	// its manifest digest, for the SBOM.
	BaseImage       string `json:"baseImage,omitempty"`
	BaseImageDigest string `json:"baseImageDigest,omitempty"`
}

// Status is the assembly step's report. A problem with the Unifile's
// contents (a missing library, a mount point, memory too small) is a
// report, not a failed step, so that the frontend can point at the line
// in BuildKit's own error display.
type Status struct {
	Error    *StatusError `json:"error,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

// StatusError is a core error (engine.StepError) as the step reports it.
type StatusError struct {
	Step    engine.Step `json:"step"`
	Path    string      `json:"path,omitempty"`
	Message string      `json:"message"`
}

func (e *StatusError) Error() string { return e.Message }

// Dirs are where the assembly step finds its inputs and writes its
// outputs: the mount points under BuildKit; temporary directories in tests.
type Dirs struct {
	Request string // the request file
	Root    string // the stage's whole root
	Added   string // what the stage wrote over its base
	Kernel  string // the kernel bundle
	// Verified is the verify step's output for that bundle (VerifiedFile
	// naming its digest); empty: Assemble verifies the bundle itself.
	Verified string
	Out      string // an empty directory for the image layout
	Status   string // an empty directory for StatusFile
	// Log receives progress lines (BuildKit shows the step's output);
	// nil discards them.
	Log io.Writer
}

func (d Dirs) log() io.Writer {
	if d.Log == nil {
		return io.Discard
	}
	return d.Log
}

// MountDirs are the Dirs of the assembly step under BuildKit.
var MountDirs = Dirs{
	Request:  filepath.Join(mountRequest, requestFile),
	Root:     mountRoot,
	Added:    mountAdded,
	Kernel:   mountKernel,
	Verified: mountVerified,
	Out:      mountOut,
	Status:   mountStatus,
}

// maxRequestBytes bounds the request file: settings are a few KiB.
const maxRequestBytes = 1 << 20

// Assemble runs the assembly step. A core error goes into the status
// report and Assemble returns nil; any other error (unreadable mounts, a
// broken bundle, a full disk) is returned and fails the step.
func Assemble(ctx context.Context, d Dirs) error {
	req, err := readRequest(d.Request)
	if err != nil {
		return err
	}
	st, err := assemble(ctx, req, d)
	var se *engine.StepError
	switch {
	case errors.As(err, &se):
		st = &Status{Error: &StatusError{Step: se.Step, Path: se.Path, Message: se.Error()}}
	case err != nil:
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(d.Status, StatusFile), data, 0o644)
}

func assemble(ctx context.Context, req *Request, d Dirs) (*Status, error) {
	root := rootfs.HostFS{Root: d.Root}.WithOrigin(req.stageOrigin())
	added := rootfs.HostFS{Root: d.Added}.WithOrigin(rootfs.Origin{Kind: rootfs.OriginStageAdded})
	plan, err := engine.Cut(ctx, engine.FinalStage{Root: root, Added: added, Settings: req.Settings})
	if err != nil {
		return nil, err
	}
	// BuildKit shows what the step prints under its vertex.
	fmt.Fprintf(d.log(), "closure of %s: %d entries in the unikernel's root\n", plan.Config.Entrypoint[0], plan.Root.Len())
	bundle, err := kernel.Open(d.Kernel)
	if err != nil {
		return nil, fmt.Errorf("the kernel bundle image holds no bundle: %w", err)
	}
	// BuildKit checked the image's layers; this checks that the bundle
	// is what its bundle.json, recorded in config.json, says it is. The
	// verify step did it once for this bundle image, cached by BuildKit.
	if err := checkVerified(bundle, d.Verified); err != nil {
		return nil, err
	}
	if err := engine.CheckMemory(bundle, plan); err != nil {
		return nil, err
	}
	plan.Kernel = req.KernelName
	cfg, err := engine.Assemble(ctx, plan, bundle, engine.Output{
		Dir: d.Out, InPlace: true, SourceDateEpoch: req.SourceDateEpoch, Name: req.Name,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(d.log(), "kernel %s; rootfs.img %d bytes, %s\n", cfg.Kernel.Release, cfg.Rootfs.Size, cfg.Rootfs.Digest)
	return &Status{Warnings: plan.Warnings}, nil
}

// VerifiedFile is what the verify step writes: the digest of the bundle
// it checked against bundle.json.
const VerifiedFile = "bundle-digest"

// VerifyKernel is the verify step: it checks every file of the kernel
// bundle in dir against its bundle.json and records the digest in out.
// BuildKit runs it once per bundle image and caches it, so a rebuild does
// not read the bundle's 100 MB again.
func VerifyKernel(dir, out string) error {
	b, err := kernel.Open(dir)
	if err != nil {
		return fmt.Errorf("the kernel bundle image holds no bundle: %w", err)
	}
	if err := b.Verify(); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(out, VerifiedFile), []byte(b.Desc.Digest), 0o444)
}

// checkVerified verifies b, unless the verify step's output in dir says
// it has verified this very bundle.
func checkVerified(b *kernel.Bundle, dir string) error {
	if dir == "" {
		return b.Verify()
	}
	got, err := os.ReadFile(filepath.Join(dir, VerifiedFile))
	if err != nil {
		return fmt.Errorf("the kernel bundle's verify step left no record: %w", err)
	}
	if string(got) != b.Desc.Digest {
		return fmt.Errorf("the kernel bundle's verify step checked %q, the bundle says %s", got, b.Desc.Digest)
	}
	return nil
}

// stageOrigin is the SBOM's origin of a file of the stage's root:
// BuildKit gives a merged root, so the layer of a file is not known.
func (r *Request) stageOrigin() rootfs.Origin {
	return rootfs.Origin{Kind: rootfs.OriginStage, Image: r.BaseImage, ImageDigest: r.BaseImageDigest}
}

// readRequest reads the request strictly: unknown fields are refused.
func readRequest(p string) (*Request, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRequestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRequestBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", p, maxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &req, nil
}

// ReadStatus reads the assembly step's report strictly.
func ReadStatus(data []byte) (*Status, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st Status
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("the assembly step's %s: %w", StatusFile, err)
	}
	return &st, nil
}
