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
)

// uniWithCache runs uni with its own cache directory and fails the test
// unless it exits 0.
func uniWithCache(t *testing.T, cache, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(uniBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "UNI_CACHE_DIR="+cache)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("uni %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestKernelPushAndBuild: `uni kernel push linux REF` publishes the default
// bundle to a real registry; a Unifile with `KERNEL REF` then builds in an
// empty cache, fetching the bundle once (the second build is served from
// the cache), and the image boots.
func TestKernelPushAndBuild(t *testing.T) {
	addr := startRegistry(t)
	ref := addr + "/uniforge/kernel:test"
	pushed := strings.TrimSpace(mustUniStdout(t, "kernel", "push", "linux", ref))
	if !strings.HasPrefix(pushed, ref+"@sha256:") {
		t.Fatalf("uni kernel push printed %q, want %s@sha256:…", pushed, ref)
	}
	// Pushing again gives the same image.
	if again := strings.TrimSpace(mustUniStdout(t, "kernel", "push", "linux", ref)); again != pushed {
		t.Fatalf("second push: %s, first %s", again, pushed)
	}

	ctx := helloGoContext(t, t.TempDir())
	unifile, err := os.ReadFile(filepath.Join(ctx, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, ctx, map[string]string{"Unifile": string(unifile) + "KERNEL " + ref + "\n"})
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "image")
	log := uniWithCache(t, cache, ctx, "build", "-o", out, ".")
	if !strings.Contains(log, "fetched kernel bundle") {
		t.Errorf("the first build did not fetch the bundle:\n%s", log)
	}
	var cfg struct {
		Kernel struct{ Name, Digest string } `json:"kernel"`
	}
	data, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Kernel.Name != ref || !strings.HasPrefix(cfg.Kernel.Digest, "sha256:") {
		t.Fatalf("config.json kernel %+v", cfg.Kernel)
	}
	ls := uniWithCache(t, cache, "", "kernel", "ls")
	if !strings.Contains(ls, ref) || !strings.Contains(ls, cfg.Kernel.Digest[:19]) {
		t.Errorf("uni kernel ls does not show %s as %s:\n%s", ref, cfg.Kernel.Digest, ls)
	}
	out2 := filepath.Join(t.TempDir(), "image")
	if log := uniWithCache(t, cache, ctx, "build", "-o", out2, "."); strings.Contains(log, "fetched kernel bundle") || strings.Contains(log, "downloading") {
		t.Errorf("the second build fetched again:\n%s", log)
	}
	for _, f := range []string{"kernel", "initrd", "rootfs.img", "config.json"} {
		if a, b := hostFile(t, filepath.Join(out, f)), hostFile(t, filepath.Join(out2, f)); string(a) != string(b) {
			t.Errorf("%s differs between the builds", f)
		}
	}

	needBoot(t)
	port := freePort(t)
	r := startUni(t, "", "run", "-p", fmt.Sprintf("%d:8080", port), out)
	if body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 3*time.Minute); body != "Hello from Go\n" {
		t.Fatalf("answer %q", body)
	}
	r.stop(t)
}

// mustUniStdout runs uni with the shared cache and returns its standard
// output alone, failing the test unless it exits 0.
func mustUniStdout(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(uniBinary(t), args...)
	cmd.Env = cacheEnv(t)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("uni %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
