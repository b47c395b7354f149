package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// needMiniKernel stops the test (a failure under CI) unless the cache has
// linux-mini, which `make test` builds first (make mini-kernel: uni kernel
// build, about 10 minutes on a fresh machine, free afterwards).
func needMiniKernel(t *testing.T) {
	t.Helper()
	var dir string
	for _, kv := range cacheEnv(t) {
		if v, ok := strings.CutPrefix(kv, "UNI_CACHE_DIR="); ok {
			dir = v
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kernels", "names", "linux-mini")); err != nil {
		testtool.Missing(t, "kernel bundle linux-mini in %s: build it with `make mini-kernel` (uni kernel build)", dir)
	}
}

// miniApp is an example rewritten to run on linux-mini.
type miniApp struct {
	name   string
	dir    string // build context with its Unifile
	port   int    // guest port
	answer string // the HTTP body it answers with
	exec   string // on the console's exec line
}

// miniApps writes hello-node (MEMORY 128M), hello-go (MEMORY 64M) and the
// Python one-liner's Unifile (as `uni init app.py` writes it, MEMORY 128M),
// each with KERNEL linux-mini.
func miniApps(t *testing.T) []miniApp {
	t.Helper()
	root := repoRoot(t)
	parent := t.TempDir()

	node := filepath.Join(parent, "hello-node")
	unifile, err := os.ReadFile(filepath.Join(root, "example/hello-node/Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(root, "example/hello-node/hi.js"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(unifile), "KERNEL linux\n", "KERNEL linux-mini\n", 1)
	if !strings.Contains(text, "KERNEL linux-mini\n") || !strings.Contains(text, "MEMORY 128M\n") {
		t.Fatalf("example/hello-node/Unifile changed: want KERNEL linux and MEMORY 128M in it:\n%s", unifile)
	}
	writeFiles(t, node, map[string]string{"Unifile": text, "hi.js": string(js)})

	goDir := helloGoContext(t, parent)
	goUnifile, err := os.ReadFile(filepath.Join(goDir, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, goDir, map[string]string{"Unifile": string(goUnifile) + "\nKERNEL linux-mini\nMEMORY 64M\n"})

	py := filepath.Join(parent, "python")
	writeFiles(t, py, map[string]string{"app.py": pythonApp})
	mustUni(t, py, "init", "app.py")
	pyUnifile, err := os.ReadFile(filepath.Join(py, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, py, map[string]string{"Unifile": string(pyUnifile) + "\nKERNEL linux-mini\nEXPOSE 8000\nMEMORY 128M\n"})

	return []miniApp{
		{"hello-node", node, 8083, "Hello World\n", "uni: exec /usr/bin/node"},
		{"hello-go", goDir, 8080, "Hello from Go\n", "uni: exec /hello"},
		{"python", py, 8000, pythonAnswer, "uni: exec "},
	}
}

// TestMiniKernelBoots builds hello-node, hello-go and the Python one-liner
// on linux-mini and boots each with direct (microvm, PVH), UEFI and BIOS
// boot at its own MEMORY (64M for hello-go, 128M for the others, UEFI
// too; hello-go's UEFI boot gets the 128 MiB OVMF and GRUB need): each
// must answer over HTTP.
func TestMiniKernelBoots(t *testing.T) {
	needBoot(t)
	needMiniKernel(t)
	testtool.Need(t, "python3")
	for _, app := range miniApps(t) {
		t.Run(app.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "image")
			mustUni(t, app.dir, "build", "--disk", "-o", out, ".")
			var cfg spec.ImageConfig
			data, err := os.ReadFile(filepath.Join(out, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.Kernel.Name != "linux-mini" || !cfg.Kernel.Microvm {
				t.Fatalf("config.json's kernel is %+v, want linux-mini, microvm", cfg.Kernel)
			}
			for _, boot := range []string{"direct", "uefi", "bios"} {
				t.Run(boot, func(t *testing.T) {
					port := freePort(t)
					r := startUni(t, "", "run", "--boot", boot, "-p", fmt.Sprintf("127.0.0.1:%d:%d", port, app.port), out)
					body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 3*time.Minute)
					qemu := qemuUsing(out)
					if body != app.answer {
						t.Fatalf("answer %q, want %q", body, app.answer)
					}
					if err := r.stop(t); err == nil || err.(*exec.ExitError).ExitCode() != 130 {
						t.Errorf("uni run after SIGINT: %v, want exit status 130", err)
					}
					console := r.console.String()
					if !strings.Contains(console, app.exec) {
						t.Errorf("console lacks %q:\n%s", app.exec, console)
					}
					// UEFI needs 128 MiB with linux-mini (OVMF and GRUB; 96
					// fails in GRUB): hello-go's 64M is raised to that, no more.
					raised := strings.Contains(console, "instead of the image's")
					if boot == "uefi" && app.name == "hello-go" {
						if !strings.Contains(console, "128 MiB instead of the image's 64 MiB") {
							t.Errorf("uni run --boot uefi did not give hello-go 128 MiB:\n%s", console)
						}
					} else if raised {
						t.Errorf("uni run raised the memory:\n%s", console)
					}
					if strings.Contains(console, "coldplug") || strings.Contains(console, "not implemented") {
						t.Errorf("the init complained about modules:\n%s", console)
					}
					wantMachine := "q35"
					if boot == "direct" {
						wantMachine = "microvm"
					}
					if !strings.Contains(qemu, "-machine "+wantMachine) {
						t.Errorf("QEMU ran as %q, want machine %s", qemu, wantMachine)
					}
					assertNoQEMU(t, out)
				})
			}
		})
	}
}

// TestMiniKernelPowersOff: an app that exits on linux-mini's microvm gives
// uni run its status, which needs the power-off to work there.
func TestMiniKernelPowersOff(t *testing.T) {
	needBoot(t)
	needMiniKernel(t)
	ctx := t.TempDir()
	buildStatic(t, "package main\n\nimport \"os\"\n\nfunc main() { println(\"bye\"); os.Exit(7) }\n", filepath.Join(ctx, "exit7"))
	writeFiles(t, ctx, map[string]string{"Unifile": "FROM scratch\nKERNEL linux-mini\nCOPY exit7 /exit7\nMEMORY 64M\nENTRYPOINT [\"/exit7\"]\n"})
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	start := time.Now()
	console, status := uni(t, "", "run", out)
	if status != 7 {
		t.Fatalf("uni run exited %d, want 7\n%s", status, console)
	}
	if !strings.Contains(console, "bye") {
		t.Errorf("console lacks the app's output:\n%s", console)
	}
	t.Logf("boot, run and power-off on microvm: %s", time.Since(start).Round(time.Millisecond))
}

// kernelBuildEnv is uni's environment with an empty cache of its own.
func kernelBuildEnv(t *testing.T) (env []string, cache string) {
	cache = t.TempDir()
	return append(os.Environ(), "UNI_CACHE_DIR="+cache), cache
}

// leftovers lists what a failed or stopped kernel build left in its cache:
// work directories and bundles (the cache's bookkeeping, names/ locks/,
// does not count).
func leftovers(t *testing.T, cache string) []string {
	entries, err := os.ReadDir(filepath.Join(cache, "kernels"))
	if err != nil {
		return nil
	}
	var left []string
	for _, e := range entries {
		if e.Name() != "names" && e.Name() != "locks" && e.Name() != "builds" {
			left = append(left, e.Name())
		}
	}
	names, _ := os.ReadDir(filepath.Join(cache, "kernels", "names"))
	for _, n := range names {
		left = append(left, "names/"+n.Name())
	}
	return left
}

// TestKernelBuildRefusesAConfigWithoutSquashfs: a fragment that turns off
// squashfs fails the build before compiling, with a message naming what
// the init needs and the fragment line, and leaves nothing in the cache.
func TestKernelBuildRefusesAConfigWithoutSquashfs(t *testing.T) {
	testtool.NeedDownload(t, "Debian's linux-source package")
	testtool.Need(t, "make", "gcc", "flex", "bison")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"nosquash.config": "# no squashfs\n# CONFIG_SQUASHFS is not set\n"})
	env, cache := kernelBuildEnv(t)
	cmd := exec.Command(uniBinary(t), "kernel", "build", "--name", "nosquash", "--config", filepath.Join(dir, "nosquash.config"))
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("uni kernel build without squashfs succeeded:\n%s", out)
	}
	for _, want := range []string{"CONFIG_SQUASHFS (the rootfs is squashfs)", "nosquash.config:2", "init needs"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "compiling") {
		t.Errorf("the build compiled before refusing the configuration:\n%s", out)
	}
	if left := leftovers(t, cache); len(left) > 0 {
		t.Errorf("the failed build left %v in the cache", left)
	}
	t.Logf("refused in %s", time.Since(start).Round(time.Second))
}

// TestKernelBuildInterrupted: Ctrl-C while the kernel compiles stops make
// (no compiler left running) and leaves no work directory, bundle or name.
func TestKernelBuildInterrupted(t *testing.T) {
	testtool.NeedDownload(t, "Debian's linux-source package")
	testtool.Need(t, "make", "gcc", "flex", "bison", "bc", "lz4")
	env, cache := kernelBuildEnv(t)
	cmd := exec.Command(uniBinary(t), "kernel", "build", "--name", "interrupted", "--nice", "10")
	cmd.Env = env
	var out testtool.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(out.String(), "configuring") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the build did not reach its configuring step:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(20 * time.Second) // well into compiling
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("uni kernel build exited 0 after SIGINT:\n%s", out.String())
	}
	if strings.Contains(out.String(), "built in") {
		t.Fatalf("the build finished before the interrupt; the test needs a slower build:\n%s", out.String())
	}
	if left := leftovers(t, cache); len(left) > 0 {
		t.Errorf("the interrupted build left %v in the cache", left)
	}
	if procs := processesUnder(cache); procs != "" {
		t.Errorf("processes still run in the build's directory: %s", procs)
	}
}

// processesUnder lists processes whose working directory is below dir.
func processesUnder(dir string) string {
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	var found []string
	for _, c := range cwds {
		if target, err := os.Readlink(c); err == nil && strings.HasPrefix(target, dir) {
			found = append(found, c+" → "+target)
		}
	}
	return strings.Join(found, ", ")
}
