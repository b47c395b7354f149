package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/testbundle"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

const identityUnifile = `FROM scratch
KERNEL linux
COPY hello /app/hello
COPY data /app/data
WORKDIR /app
ENV GREETING=hi
EXPOSE 8080
MEMORY 96M
ENTRYPOINT ["/app/hello", "--flag"]
`

// staticProgram builds a small static Go program into dir/name.
func staticProgram(t *testing.T, dir, name string) {
	t.Helper()
	goBin := testtool.Need(t, "go")[0]
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", filepath.Join(dir, name), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// stageDirs lays out what BuildKit mounts for the identity Unifile: the
// stage's root (FROM scratch, so also what it added) as COPY writes it.
func stageDirs(t *testing.T, ctxDir string) (root string) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"app", "app/data"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"hello", "data/greeting.txt"} {
		data, err := os.ReadFile(filepath.Join(ctxDir, f))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(filepath.Join(ctxDir, f))
		if err := os.WriteFile(filepath.Join(root, "app", f), data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestAssembleIsUniBuild: the assembly step on the directories BuildKit
// mounts writes the same kernel, initrd, rootfs.img and config.json as
// `uni build` of the same Unifile, byte for byte.
func TestAssembleIsUniBuild(t *testing.T) {
	if os.Getuid() != 0 {
		testtool.Missing(t, "root: the stage root must be owned by root, as BuildKit's is (ownership is part of rootfs.img)")
	}
	bundle := defaultTestBundle(t)
	ctxDir := t.TempDir()
	staticProgram(t, ctxDir, "hello")
	if err := os.MkdirAll(filepath.Join(ctxDir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "data/greeting.txt"), []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Unifile"), []byte(identityUnifile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	cli := filepath.Join(t.TempDir(), "cli")
	epoch := int64(0)
	if _, err := engine.Build(ctx, engine.Request{
		ContextDir: ctxDir, OutDir: cli, SourceDateEpoch: &epoch, CacheDir: t.TempDir(),
		KernelOptions: []kernel.Option{kernel.WithCacheDir(filepath.Dir(bundle.Dir)), kernel.WithoutDistro()},
	}); err != nil {
		t.Fatal(err)
	}

	conv, err := Convert(ctx, []byte(identityUnifile), testOpt())
	if err != nil {
		t.Fatal(err)
	}
	bk := runAssemble(t, conv.Request, stageDirs(t, ctxDir), bundle.Dir)
	if bk.st.Error != nil {
		t.Fatalf("the assembly step reports %+v", bk.st.Error)
	}
	// The SBOM says what BuildKit can tell: the stage added these files.
	if doc, err := os.ReadFile(filepath.Join(bk.out, spec.SBOMFile)); err != nil || !bytes.Contains(doc, []byte("stage-added")) {
		t.Errorf("the SBOM does not name the stage's additions (%v)", err)
	}
	for _, f := range []string{spec.KernelFile, spec.InitrdFile, spec.RootfsFile, spec.ConfigFile} {
		a, errA := os.ReadFile(filepath.Join(cli, f))
		b, errB := os.ReadFile(filepath.Join(bk.out, f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v / %v", f, errA, errB)
		}
		if !bytes.Equal(a, b) {
			if f == spec.RootfsFile { // say which files differ
				for _, d := range []string{cli, bk.out} {
					out, _ := exec.Command("unsquashfs", "-lln", filepath.Join(d, f)).CombinedOutput()
					t.Logf("%s:\n%s", d, out)
				}
			}
			t.Errorf("%s differs between uni build (%d bytes) and the assembly step (%d bytes)", f, len(a), len(b))
		}
	}
}

// defaultTestBundle imports the test kernel as the cache's default
// ("linux"), which `uni build` resolves KERNEL linux to, as the frontend
// resolves it to the default bundle image.
func defaultTestBundle(t *testing.T) *kernel.Bundle {
	t.Helper()
	testbundle.Bundle(t) // checks for the tools an import needs
	src := t.TempDir()
	testbundle.Dir(t, src)
	b, err := kernel.Import(context.Background(), src, kernel.WithCacheDir(t.TempDir()), kernel.WithName(kernel.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type assembled struct {
	out string
	st  *Status
}

// runAssemble runs the assembly step as BuildKit would, on directories.
func runAssemble(t *testing.T, req Request, root, bundleDir string) assembled {
	t.Helper()
	dir := t.TempDir()
	d := Dirs{
		Request: filepath.Join(dir, "request.json"),
		Root:    root,
		Added:   root,
		Kernel:  bundleDir,
		Out:     filepath.Join(dir, "out"),
		Status:  filepath.Join(dir, "status"),
	}
	data, _ := json.Marshal(req)
	for _, p := range []string{d.Out, d.Status} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.Request, data, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := Assemble(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(d.Status, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(raw)
	if err != nil {
		t.Fatal(err)
	}
	return assembled{out: d.Out, st: st}
}

// TestAssembleReportsCoreErrors: a Unifile problem found by the core is a
// report naming the step, and the step itself succeeds.
func TestAssembleReportsCoreErrors(t *testing.T) {
	bundle := testbundle.Bundle(t)
	ctxDir := t.TempDir()
	staticProgram(t, ctxDir, "hello")
	os.MkdirAll(filepath.Join(ctxDir, "data"), 0o755)
	os.WriteFile(filepath.Join(ctxDir, "data/greeting.txt"), []byte("hello\n"), 0o644)
	conv, err := Convert(context.Background(), []byte(strings.Replace(identityUnifile, `"/app/hello"`, `"/app/missing"`, 1)), testOpt())
	if err != nil {
		t.Fatal(err)
	}
	got := runAssemble(t, conv.Request, stageDirs(t, ctxDir), bundle.Dir)
	if got.st.Error == nil || got.st.Error.Step != engine.StepEntrypoint || !strings.Contains(got.st.Error.Message, "/app/missing") {
		t.Fatalf("status %+v, want an entrypoint error naming /app/missing", got.st.Error)
	}
	loc, _ := engine.StepLocation(conv.Stage, &engine.StepError{Step: got.st.Error.Step, Err: got.st.Error}, nil)
	if loc.Line != 9 {
		t.Errorf("the error points at line %d, want ENTRYPOINT's, 9", loc.Line)
	}

	conv.Request.Settings.MemoryBytes = 16 << 20
	conv.Request.Settings.Entrypoint = []string{"/app/hello"}
	got = runAssemble(t, conv.Request, stageDirs(t, ctxDir), bundle.Dir)
	if got.st.Error == nil || got.st.Error.Step != engine.StepMemory {
		t.Fatalf("status %+v, want a memory error", got.st.Error)
	}
}

func TestReadRequestIsStrict(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	for _, bad := range []string{`{"settings":{},"extra":1}`, `[]`, strings.Repeat(" ", maxRequestBytes+1) + "{}"} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := readRequest(p); err == nil {
			t.Errorf("readRequest accepted %.40q", bad)
		}
	}
	if _, err := ReadStatus([]byte(`{"error":{"step":"x","message":"m"},"more":1}`)); err == nil {
		t.Error("ReadStatus accepted an unknown field")
	}
}

// TestVerifyKernelStep: the verify step records the digest it checked; the
// assembly step takes that record for this bundle only, and a bundle whose
// files do not match its bundle.json fails the verify step.
func TestVerifyKernelStep(t *testing.T) {
	b := testbundle.Bundle(t)
	out := t.TempDir()
	if err := VerifyKernel(b.Dir, out); err != nil {
		t.Fatal(err)
	}
	if err := checkVerified(b, out); err != nil {
		t.Errorf("the record of this bundle: %v", err)
	}
	other := *b
	other.Desc.Digest = "sha256:" + strings.Repeat("0", 64)
	if err := checkVerified(&other, out); err == nil {
		t.Error("the record of another bundle was taken")
	}
	if err := checkVerified(b, t.TempDir()); err == nil {
		t.Error("no record was taken as verified")
	}
	// A bundle whose kernel is not what bundle.json says.
	broken := t.TempDir()
	if out, err := exec.Command("cp", "-a", b.Dir+"/.", broken).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(broken, kernel.KernelFile), []byte("not that kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := VerifyKernel(broken, t.TempDir()); err == nil {
		t.Error("a bundle that does not match its bundle.json passed the verify step")
	}
}
