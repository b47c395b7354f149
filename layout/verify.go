package layout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/uniforge/packer-plugin-unikernel/image/initrd"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

const (
	// maxInitConfig bounds /uni/init.json in the initrd.
	maxInitConfig = 1 << 20
	// bzImageMagic at bzImageMagicOffset marks a Linux boot-protocol kernel.
	// QEMU takes any other -kernel for a multiboot image, which reads
	// -initrd as a comma-separated list of host files with arguments.
	bzImageMagic       = "HdrS"
	bzImageMagicOffset = 0x202
)

// Verify checks the layout's files against config.json before anything
// boots: rootfs.img's size, sha256 and superblock digest; that the kernel is
// a bzImage; that the init config inside the initrd (the one the guest
// really runs) says what config.json says; the size and sha256 of every
// other file config.json records a digest for; and, when the layout holds
// sbom.spdx.json, that it describes this rootfs.img (VerifySBOM). Files are
// streamed, never loaded whole. Errors wrap ErrMismatch when a file differs.
func (l *Layout) Verify(ctx context.Context, opts ...VerifyOption) error {
	var vo verifyOptions
	for _, o := range opts {
		o(&vo)
	}
	checked := vo.checked
	cfg := &l.config
	rootfs := l.Path(spec.RootfsFile)
	fi, err := os.Lstat(rootfs)
	if err != nil {
		return err
	}
	if fi.Size() != cfg.Rootfs.Size {
		return l.mismatch(spec.RootfsFile, "%d bytes, config.json rootfs.size says %d", fi.Size(), cfg.Rootfs.Size)
	}
	var ref spec.RootfsRef
	if known, ok := checked[spec.RootfsFile]; ok && known.Size == fi.Size() {
		// Its sha256 was checked as it was written; only the superblock is read.
		ref = spec.RootfsRef{Digest: known.Digest, Size: known.Size}
		ref.SuperblockDigest, err = hashSuperblock(ctx, rootfs)
	} else {
		ref, err = HashRootfs(ctx, rootfs)
	}
	if err != nil {
		return err
	}
	if ref.Digest != cfg.Rootfs.Digest {
		return l.mismatch(spec.RootfsFile, "sha256 is %s, config.json rootfs.digest says %s", ref.Digest, cfg.Rootfs.Digest)
	}
	if ref.SuperblockDigest != cfg.Rootfs.SuperblockDigest {
		return l.mismatch(spec.RootfsFile, "superblock sha256 is %s, config.json rootfs.superblockDigest says %s", ref.SuperblockDigest, cfg.Rootfs.SuperblockDigest)
	}
	if err := l.verifyKernel(ctx, checked); err != nil {
		return err
	}
	if err := l.verifyInitrd(ctx, vo.initrd); err != nil {
		return err
	}
	// disk.img and sbom.spdx.json are optional: they travel on their own
	// (disk.img is pushed only on request and can be written again from
	// the other files; the SBOM is a referrer of the pushed image), so a
	// layout without them is whole. When present, they must match.
	if cfg.Disk != nil && l.HasDisk() {
		if err := l.verifyFile(ctx, checked, spec.DiskFile, "disk", *cfg.Disk); err != nil {
			return err
		}
	}
	if l.HasSBOM() {
		if err := l.VerifySBOM(ctx); err != nil {
			return err
		}
	}
	l.verified = true
	return nil
}

// VerifySBOM checks that sbom.spdx.json describes this layout's
// rootfs.img: the digest its namespace and its described package name
// (sbom.Subject) must be config.json's rootfs.digest. config.json records
// no digest of the SBOM, which is a description of the image, not one of
// its files (the engines that build the same image do not see the same
// origins). rootfs.img itself is not read: Verify checks it against
// rootfs.digest. Errors wrap os.ErrNotExist without the file and
// ErrMismatch for the document of another image.
func (l *Layout) VerifySBOM(ctx context.Context) error {
	if !l.HasSBOM() {
		return fmt.Errorf("%s: no %s here: a layout from uni pull holds it when the registry has it as a referrer (uni sbom REF fetches it; oras pull brings only the image's files), and one built before uni wrote an SBOM has none (rebuild it): %w", l.dir, spec.SBOMFile, os.ErrNotExist)
	}
	f, err := os.Open(l.Path(spec.SBOMFile))
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := sbom.Subject(ctxio.Reader(ctx, f))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %s: %w", l.dir, spec.SBOMFile, err)
	}
	if got != l.config.Rootfs.Digest {
		return l.mismatch(spec.SBOMFile, "it describes rootfs.img %s, config.json rootfs.digest says %s", got, l.config.Rootfs.Digest)
	}
	return nil
}

func (l *Layout) mismatch(file, format string, args ...any) error {
	return mismatch(l.dir, file, format, args...)
}

func mismatch(dir, file, format string, args ...any) error {
	return fmt.Errorf("%s: %s %w: %s", dir, file, ErrMismatch, fmt.Sprintf(format, args...))
}

func (l *Layout) verifyKernel(ctx context.Context, checked map[string]spec.FileRef) error {
	f, err := os.Open(l.Path(spec.KernelFile))
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, len(bzImageMagic))
	if _, err := f.ReadAt(magic, bzImageMagicOffset); err != nil || string(magic) != bzImageMagic {
		return fmt.Errorf("%s: %s is not a Linux bzImage (no %q at %#x)", l.dir, spec.KernelFile, bzImageMagic, bzImageMagicOffset)
	}
	if ref := l.config.KernelFile; ref != nil {
		return l.verifyFile(ctx, checked, spec.KernelFile, "kernelFile", *ref)
	}
	return nil
}

// InitrdCheck is what CheckInitrd found: the initrd's size and sha256 and
// the init config inside it, which matched the config.json it was given.
type InitrdCheck struct {
	File    spec.FileRef
	against spec.InitConfig // what the config.json it was given implies
}

// CheckInitrd reads the initrd at p strictly, to its end (a duplicate
// entry or anything after the compressed stream is an error), hashes it on
// the way, and compares the init config inside it (the one the guest
// really runs) with the one cfg implies, and its size and sha256 with cfg's
// initrd when cfg records them. Verify does this; a caller that has
// config.json and the initrd before the rest of a layout (a pull, while
// rootfs.img still streams) can do it early and hand the result to Verify
// with WithCheckedInitrd.
func CheckInitrd(ctx context.Context, p string, cfg *spec.ImageConfig) (InitrdCheck, error) {
	dir := filepath.Dir(p)
	f, err := os.Open(p)
	if err != nil {
		return InitrdCheck{}, err
	}
	defer f.Close()
	h := sha256.New()
	n := &countingReader{r: ctxio.Reader(ctx, f)}
	data, err := initrd.ReadFile(io.TeeReader(n, h), spec.InitConfigPath, maxInitConfig)
	if err != nil {
		return InitrdCheck{}, fmt.Errorf("%s: %s: %w", dir, spec.InitrdFile, err)
	}
	// ReadFile read to the end of the compressed stream; a byte after it
	// is an error there, so the hash covers the whole file.
	if _, err := io.Copy(h, n); err != nil {
		return InitrdCheck{}, err
	}
	c := InitrdCheck{File: spec.FileRef{Digest: digest(h), Size: n.n}}
	if ref := cfg.Initrd; ref != nil {
		if c.File.Size != ref.Size {
			return InitrdCheck{}, mismatch(dir, spec.InitrdFile, "%d bytes, config.json initrd.size says %d", c.File.Size, ref.Size)
		}
		if c.File.Digest != ref.Digest {
			return InitrdCheck{}, mismatch(dir, spec.InitrdFile, "sha256 is %s, config.json initrd.digest says %s", c.File.Digest, ref.Digest)
		}
	}
	var got spec.InitConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		return InitrdCheck{}, fmt.Errorf("%s: %s: %s: %w", dir, spec.InitrdFile, spec.InitConfigPath, err)
	}
	c.against = cfg.InitConfig()
	if err := compareInit(dir, got, c.against); err != nil {
		return InitrdCheck{}, err
	}
	return c, nil
}

// verifyInitrd checks the initrd with CheckInitrd, unless the caller did
// (WithCheckedInitrd) for this config.json and a file of the size it saw;
// its digest then stands for the file, as WithCheckedFiles' digests do.
func (l *Layout) verifyInitrd(ctx context.Context, early *InitrdCheck) error {
	if early != nil && reflect.DeepEqual(early.against, l.config.InitConfig()) {
		fi, err := os.Lstat(l.Path(spec.InitrdFile))
		if err != nil {
			return err
		}
		if fi.Size() != early.File.Size {
			return l.mismatch(spec.InitrdFile, "changed since it was checked")
		}
		if ref := l.config.Initrd; ref != nil && *ref != early.File {
			return l.mismatch(spec.InitrdFile, "sha256 is %s (%d bytes), config.json initrd says %s (%d bytes)", early.File.Digest, early.File.Size, ref.Digest, ref.Size)
		}
		return nil
	}
	_, err := CheckInitrd(ctx, l.Path(spec.InitrdFile), &l.config)
	return err
}

// compareInit names the first field where the initrd's init config differs
// from config.json's.
func compareInit(dir string, got, want spec.InitConfig) error {
	differ := func(initField, cfgField string, g, w any) error {
		return mismatch(dir, spec.InitrdFile, "%s %s is %s, config.json %s says %s", spec.InitConfigPath, initField, show(g), cfgField, show(w))
	}
	switch {
	case !slices.Equal(got.Args, want.Args):
		return differ("args", "entrypoint", got.Args, want.Args)
	case !slices.Equal(got.Env, want.Env):
		return differ("env", "env", got.Env, want.Env)
	case got.WorkingDir != want.WorkingDir:
		return differ("workingDir", "workingDir", got.WorkingDir, want.WorkingDir)
	case got.UID != want.UID || got.GID != want.GID:
		return differ("uid:gid", "user", fmt.Sprintf("%d:%d", got.UID, got.GID), fmt.Sprintf("%d:%d", want.UID, want.GID))
	case got.Hostname != want.Hostname:
		return differ("hostname", "hostname", got.Hostname, want.Hostname)
	case got.RootfsSuperblockDigest != want.RootfsSuperblockDigest:
		return differ("rootfsSuperblockDigest", "rootfs.superblockDigest", got.RootfsSuperblockDigest, want.RootfsSuperblockDigest)
	case got.RootfsType != want.RootfsType:
		return differ("rootfsType", "rootfs.type", got.RootfsType, want.RootfsType)
	case got.Network.Disabled || got.Network.Static != nil:
		return differ("network", "(no network field: DHCP)", got.Network, "DHCP")
	}
	return nil
}

// show prints a value for an error message; strings are quoted, so nothing
// from the files reaches a terminal raw.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	return string(b)
}

// verifyFile compares a file with the digest config.json records, taking
// the digest from checked when its caller has one.
func (l *Layout) verifyFile(ctx context.Context, checked map[string]spec.FileRef, name, field string, ref spec.FileRef) error {
	if known, ok := checked[name]; ok {
		if fi, err := os.Lstat(l.Path(name)); err != nil || fi.Size() != known.Size {
			return l.mismatch(name, "changed since its digest was checked")
		}
		if known != ref {
			return l.mismatch(name, "sha256 is %s (%d bytes), config.json %s says %s (%d bytes)", known.Digest, known.Size, field, ref.Digest, ref.Size)
		}
		return nil
	}
	f, err := l.hashFile(ctx, name)
	if err != nil {
		return err
	}
	if f.Size != ref.Size {
		return l.mismatch(name, "%d bytes, config.json %s.size says %d", f.Size, field, ref.Size)
	}
	if f.Digest != ref.Digest {
		return l.mismatch(name, "sha256 is %s, config.json %s.digest says %s", f.Digest, field, ref.Digest)
	}
	return nil
}

// File is one file of a layout.
type File struct {
	Name   string // spec.KernelFile, …
	Path   string
	Size   int64
	Digest string // sha256:…
}

// Files lists the layout's files in a fixed order (config.json, kernel,
// initrd, rootfs.img, then disk.img and sbom.spdx.json if present) with
// sizes and digests.
func (l *Layout) Files(ctx context.Context) ([]File, error) {
	names := slices.Clone(Required)
	if l.HasDisk() {
		names = append(names, spec.DiskFile)
	}
	if l.HasSBOM() {
		names = append(names, spec.SBOMFile)
	}
	files := make([]File, 0, len(names))
	for _, name := range names {
		f, err := l.hashFile(ctx, name)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func (l *Layout) hashFile(ctx context.Context, name string) (File, error) {
	p := l.Path(name)
	if ok, err := regularFile(p); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%s: %w", p, os.ErrNotExist)
		}
		return File{}, err
	}
	ref, err := HashFile(ctx, p)
	if err != nil {
		return File{}, err
	}
	return File{Name: name, Path: p, Size: ref.Size, Digest: ref.Digest}, nil
}

// HashRootfs describes the squashfs at p as config.json records it: its
// size and sha256, and the sha256 of its first spec.SuperblockBytes, zero
// padded as the init reads them from the block device.
func HashRootfs(ctx context.Context, p string) (spec.RootfsRef, error) {
	f, err := os.Open(p)
	if err != nil {
		return spec.RootfsRef{}, err
	}
	defer f.Close()
	r := ctxio.Reader(ctx, f)
	head := make([]byte, spec.SuperblockBytes)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return spec.RootfsRef{}, err
	}
	sb := sha256.Sum256(head) // zeros after n
	h := sha256.New()
	h.Write(head[:n])
	rest, err := io.Copy(h, r)
	if err != nil {
		return spec.RootfsRef{}, fmt.Errorf("%s: %w", p, err)
	}
	return spec.RootfsRef{Type: "squashfs", Digest: digest(h), Size: int64(n) + rest, SuperblockDigest: "sha256:" + hex.EncodeToString(sb[:])}, nil
}

// VerifyOption adjusts Verify.
type VerifyOption func(*verifyOptions)

type verifyOptions struct {
	checked map[string]spec.FileRef
	initrd  *InitrdCheck
}

// WithCheckedFiles tells Verify the sha256 and size of files that the
// caller has just checked while writing them (a pull checks every blob
// against its digest as it streams), so Verify compares those with
// config.json instead of reading the files again. Everything else is
// verified as usual.
func WithCheckedFiles(files map[string]spec.FileRef) VerifyOption {
	return func(o *verifyOptions) { o.checked = files }
}

// WithCheckedInitrd tells Verify that CheckInitrd passed on the layout's
// initrd (c, its result): Verify takes it for the initrd of that size
// when the config.json it reads implies the same init config, and checks
// the initrd again otherwise.
func WithCheckedInitrd(c InitrdCheck) VerifyOption {
	return func(o *verifyOptions) { o.initrd = &c }
}

// hashSuperblock is the sha256 of the first spec.SuperblockBytes of p,
// zero padded.
func hashSuperblock(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, spec.SuperblockBytes)
	if _, err := io.ReadFull(ctxio.Reader(ctx, f), head); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	sb := sha256.Sum256(head)
	return "sha256:" + hex.EncodeToString(sb[:]), nil
}

// HashFile is the size and sha256 of the file at p.
func HashFile(ctx context.Context, p string) (spec.FileRef, error) {
	f, err := os.Open(p)
	if err != nil {
		return spec.FileRef{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxio.Reader(ctx, f))
	if err != nil {
		return spec.FileRef{}, fmt.Errorf("%s: %w", p, err)
	}
	return spec.FileRef{Digest: digest(h), Size: n}, nil
}

func digest(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
