package main

// These tests drive the real packer (scripts/install-packer.sh; make
// $(GOBIN)/packer) with this plugin installed through
// `packer plugins install --path`, as a user would.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/engine"
	"github.com/uniforge/packer-plugin-unikernel/internal/testregistry"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/oci"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// packerEnv builds the plugin, installs it into a private plugin directory
// and returns the packer binary and the environment that finds the plugin.
func packerEnv(t *testing.T) (string, []string) {
	t.Helper()
	packer := testtool.Need(t, "packer")[0]
	dir := t.TempDir()
	plugin := filepath.Join(dir, "packer-plugin-unikernel")
	// -trimpath as make plugin: the two share the build cache.
	build := exec.Command("go", "build", "-trimpath", "-o", plugin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	env := append(os.Environ(),
		"PACKER_PLUGIN_PATH="+filepath.Join(dir, "plugins"),
		"PACKER_CONFIG_DIR="+filepath.Join(dir, "config"),
		"CHECKPOINT_DISABLE=1",
	)
	// The SDK's own check of a plugin binary (describe, naming, protocol).
	// It takes only a bare name (packer-plugin-*), so it runs in dir.
	sdcPath, err := exec.Command("go", "tool", "-n", "packer-sdc").Output()
	if err != nil {
		t.Fatalf("go tool -n packer-sdc: %v", err)
	}
	sdc := exec.Command(strings.TrimSpace(string(sdcPath)), "plugin-check", filepath.Base(plugin))
	sdc.Dir = dir
	if out, err := sdc.CombinedOutput(); err != nil {
		t.Fatalf("packer-sdc plugin-check: %v\n%s", err, out)
	}
	runPacker(t, packer, env, 0, "plugins", "install", "--path", plugin, "github.com/uniforge/unikernel")
	return packer, env
}

// runPacker runs packer and fails t unless it exits with want (0, or any
// non-zero status for want < 0). It returns the combined output.
func runPacker(t *testing.T, packer string, env []string, want int, args ...string) string {
	t.Helper()
	cmd := exec.Command(packer, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if (want == 0 && err != nil) || (want < 0 && code == 0) {
		t.Fatalf("packer %s: exit %d (%v), want %d\n%s", strings.Join(args, " "), code, err, want, out.String())
	}
	return out.String()
}

func TestPackerValidate(t *testing.T) {
	packer, env := packerEnv(t)
	runPacker(t, packer, env, 0, "validate", "example/unikernel.pkr.hcl")

	bad := filepath.Join(t.TempDir(), "bad.pkr.hcl")
	writeTemplate(t, bad, `context = "ctx"
  ready {
    type = "htp"
  }`, "")
	out := runPacker(t, packer, env, -1, "validate", bad)
	if !strings.Contains(out, `ready.type: "htp" is none of tcp, http, console, exit`) {
		t.Errorf("packer validate of a bad ready.type says:\n%s", out)
	}
}

// writeTemplate writes a template with one unikernel source (body) and the
// post-processors pp.
func writeTemplate(t *testing.T, path, body, pp string) {
	t.Helper()
	tmpl := `packer {
  required_plugins {
    unikernel = {
      source  = "github.com/uniforge/unikernel"
      version = ">= 0.1.0"
    }
  }
}

source "unikernel" "app" {
  ` + body + `
}

build {
  sources = ["source.unikernel.app"]
  ` + pp + `
}
`
	if err := os.WriteFile(path, []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
}

// helloContext is a build context of example/hello-go with its binary built.
func helloContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	uf, err := os.ReadFile("example/hello-go/Unifile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Unifile"), uf, 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "hello"), ".")
	build.Dir = "example/hello-go"
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hello-go: %v\n%s", err, out)
	}
	return dir
}

// The example template, built as its comment says: hello-node built,
// booted until it answers, converted to qcow2 and VMDK. Then the output
// directory's rules: a second build without -force is refused before any
// work, and a forced one whose check fails leaves the first layout as it was.
func TestPackerBuildExample(t *testing.T) {
	testtool.NeedVM(t)
	testtool.Need(t, "node")
	qemuImg := testtool.Need(t, "qemu-img")[0]
	packer, env := packerEnv(t)
	work := t.TempDir()
	out := filepath.Join(work, "hello-node")
	runPacker(t, packer, env, 0, "build", "-var", "output_directory="+out, "example/unikernel.pkr.hcl")

	raw := filepath.Join(out, "disk.img") // written by the convert post-processor
	for _, f := range []string{out + ".qcow2", out + ".vmdk"} {
		if b, err := exec.Command(qemuImg, "check", f).CombinedOutput(); err != nil {
			t.Errorf("qemu-img check %s: %v\n%s", f, err, b)
		}
		if b, err := exec.Command(qemuImg, "compare", raw, f).CombinedOutput(); err != nil {
			t.Errorf("qemu-img compare disk.img %s: %v\n%s", f, err, b)
		}
	}

	// The builder's layout is the one `uni build` makes: same engine, same bytes.
	cli := filepath.Join(work, "cli")
	if _, err := engine.Build(context.Background(), engine.Request{ContextDir: "example/hello-node", OutDir: cli}); err != nil {
		t.Fatal(err)
	}
	built := sums(t, out)
	for name, sum := range sums(t, cli) {
		if built[name] != sum {
			t.Errorf("%s differs between packer build and uni build", name)
		}
	}

	got := runPacker(t, packer, env, -1, "build", "-var", "output_directory="+out, "example/unikernel.pkr.hcl")
	if !strings.Contains(got, "output_directory "+out+" already exists; packer build -force replaces it") {
		t.Errorf("a second build without -force says:\n%s", got)
	}

	// -force with a check that never passes: the proven layout stays.
	tmpl := filepath.Join(work, "never.pkr.hcl")
	writeNeverReady(t, tmpl, mustAbs(t, "example/hello-node"), out, "20s")
	got = runPacker(t, packer, env, -1, "build", "-force", tmpl)
	if !strings.Contains(got, "did not become ready within 20s") {
		t.Errorf("packer build output lacks the readiness failure:\n%s", got)
	}
	if after := sums(t, out); !maps.Equal(after, built) {
		t.Errorf("a failed forced build changed %s: %v, was %v", out, after, built)
	}
	assertNoLeftovers(t, work)
}

// writeNeverReady writes a template that builds ctxDir into out and waits up
// to timeout for guest port 9999 to accept, which nothing in it serves.
func writeNeverReady(t *testing.T, tmpl, ctxDir, out, timeout string) {
	t.Helper()
	writeTemplate(t, tmpl, `context = "`+ctxDir+`"
  output_directory = "`+out+`"
  ready {
    type    = "tcp"
    port    = 9999
    timeout = "`+timeout+`"
  }`, "")
}

// sums maps each file of dir to its sha256.
func sums(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return m
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// assertNoLeftovers fails t if a QEMU still runs on anything under dir, or
// a staging or temporary directory of a build is left in it.
func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	if leaked := qemuOf(t, dir); leaked != "" {
		t.Errorf("QEMU still runs: %s", leaked)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

// A readiness check that never succeeds fails the build within its
// timeout, names what it waited for, and leaves no output behind.
func TestPackerBuildNotReady(t *testing.T) {
	testtool.NeedVM(t)
	packer, env := packerEnv(t)
	ctxDir, work := helloContext(t), t.TempDir()
	out := filepath.Join(work, "layout")
	tmpl := filepath.Join(work, "app.pkr.hcl")
	writeNeverReady(t, tmpl, ctxDir, out, "15s")
	got := runPacker(t, packer, env, -1, "build", tmpl)
	if !strings.Contains(got, "did not become ready within 15s (waiting for guest port 9999 to accept)") {
		t.Errorf("packer build output lacks the readiness failure:\n%s", got)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory %s left behind (stat: %v)", out, err)
	}
	assertNoLeftovers(t, work)
}

// qemuOf returns the command line of a running process that names dir, if any.
func qemuOf(t *testing.T, dir string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cl := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		if strings.Contains(cl, "qemu") && strings.Contains(cl, dir) {
			return cl
		}
	}
	return ""
}

// Ctrl-C during the boot stops the VM and removes the output. A terminal's
// Ctrl-C interrupts the whole foreground process group: packer runs itself
// under panicwrap, whose outer process does not pass the signal on, so the
// test signals packer's own process group as the terminal would.
func TestPackerBuildCancel(t *testing.T) {
	testtool.NeedVM(t)
	packer, env := packerEnv(t)
	ctxDir, work := helloContext(t), t.TempDir()
	out := filepath.Join(work, "layout")
	tmpl := filepath.Join(work, "app.pkr.hcl")
	writeNeverReady(t, tmpl, ctxDir, out, "5m")
	cmd := exec.Command(packer, "build", tmpl)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	booted := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "listening on :8080") { // the app runs in the VM
				once.Do(func() { close(booted) })
			}
		}
	}()
	select {
	case <-booted:
	case <-time.After(3 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("the VM did not boot")
	}
	if qemuOf(t, work) == "" {
		t.Fatal("no QEMU running before the interrupt: the test would prove nothing")
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := cmd.Wait()
	pw.Close()
	if err == nil {
		t.Fatalf("packer build succeeded after an interrupt:\n%s", log.String())
	}
	if d := time.Since(start); d > time.Minute { // the check's timeout is 5m
		t.Errorf("packer took %s to stop after the interrupt", d)
	}
	t.Logf("packer exited %v after the interrupt in %s:\n%s", err, time.Since(start), log.String())
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory %s left behind (stat: %v)", out, err)
	}
	assertNoLeftovers(t, work)
}

// Every build in docs/packer.md's chaining section parses, with the
// example's source, under packer's own HCL parser. (-syntax-only: the cloud
// plugins it names are not installed here; the unikernel half of each chain
// is what TestPackerBuildExample runs.)
func TestPackerDocsParse(t *testing.T) {
	packer, env := packerEnv(t)
	doc, err := os.ReadFile("docs/packer.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example/unikernel.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	source, _, _ := strings.Cut(string(example), "\nbuild {")
	builds := 0
	for i, block := range strings.Split(string(doc), "```hcl\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.Contains(block, "build {") {
			continue
		}
		builds++
		p := filepath.Join(t.TempDir(), fmt.Sprintf("doc%d.pkr.hcl", i))
		if err := os.WriteFile(p, []byte(source+"\n"+block), 0o644); err != nil {
			t.Fatal(err)
		}
		runPacker(t, packer, env, 0, "validate", "-syntax-only", p)
	}
	if builds < 4 {
		t.Errorf("docs/packer.md has %d build blocks, want the 4 cloud chains at least", builds)
	}
	// The check can fail: a block with a typo does not pass.
	bad := filepath.Join(t.TempDir(), "bad.pkr.hcl")
	if err := os.WriteFile(bad, []byte(source+"\nbuild {\n  post-processors {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runPacker(t, packer, env, -1, "validate", "-syntax-only", bad)
}

// The two other sources and the push post-processor, against a real
// registry: a `ref` source pulls what `uni push` pushed, boots it, and
// unikernel-push pushes it on under a new tag that `oras pull` reads back
// file for file; a `layout` source boots a user's layout and leaves it as it
// was.
func TestPackerRefLayoutAndPush(t *testing.T) {
	testtool.NeedVM(t)
	oras := testtool.Need(t, "oras")[0]
	packer, env := packerEnv(t)
	addr, _ := testregistry.Start(t)
	ctxDir, work := helloContext(t), t.TempDir()

	userLayout := filepath.Join(work, "mine")
	if _, err := engine.Build(context.Background(), engine.Request{ContextDir: ctxDir, OutDir: userLayout}); err != nil {
		t.Fatal(err)
	}
	before := sums(t, userLayout)
	l, err := layout.Open(userLayout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Push(context.Background(), l, addr+"/apps/hello:1", oci.WithInsecure(true)); err != nil {
		t.Fatal(err)
	}

	pulled := filepath.Join(work, "pulled")
	tmpl := filepath.Join(work, "ref.pkr.hcl")
	writeTemplate(t, tmpl, `ref = "`+addr+`/apps/hello:1"
  insecure = true
  output_directory = "`+pulled+`"
  ready {
    type = "console"
    line = "listening on :8080"
  }`, `post-processor "unikernel-push" {
    ref      = "`+addr+`/apps/hello:2"
    insecure = true
  }`)
	runPacker(t, packer, env, 0, "build", tmpl)
	if got := sums(t, pulled); !maps.Equal(got, before) {
		t.Errorf("the ref source's layout %v differs from what was pushed %v", got, before)
	}
	orasOut := filepath.Join(work, "oras")
	if b, err := exec.Command(oras, "pull", "--plain-http", "-o", orasOut, addr+"/apps/hello:2").CombinedOutput(); err != nil {
		t.Fatalf("oras pull of the pushed tag: %v\n%s", err, b)
	}
	// oras pulls the manifest's files; the SBOM is a referrer beside it.
	files := maps.Clone(before)
	delete(files, spec.SBOMFile)
	if got := sums(t, orasOut); !maps.Equal(got, files) {
		t.Errorf("oras pull of unikernel-push's tag gave %v, want %v", got, files)
	}

	tmpl = filepath.Join(work, "layout.pkr.hcl")
	writeTemplate(t, tmpl, `layout = "`+userLayout+`"
  ready {
    type = "http"
    port = 8080
    body_contains = "Hello from Go"
  }`, "")
	runPacker(t, packer, env, 0, "build", tmpl)
	if after := sums(t, userLayout); !maps.Equal(after, before) {
		t.Errorf("a layout source changed the user's layout: %v, was %v", after, before)
	}
	assertNoLeftovers(t, work)
}
