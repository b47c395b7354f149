package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestCosignSignsTheArtifact: a pushed unikernel is an ordinary OCI
// artifact to the real cosign (a key pair, no transparency log): it signs
// it, verifies it, and the signature shows up under oras discover.
func TestCosignSignsTheArtifact(t *testing.T) {
	testtool.NeedDownload(t, "the default kernel package (first build)")
	tools := testtool.Need(t, "cosign", "oras")
	cosign, oras := tools[0], tools[1]
	reg := startRegistry(t)
	ctx := helloGoContext(t, t.TempDir())
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	ref := reg + "/apps/hello-go:1"
	mustUni(t, "", "push", out, ref)

	digest := strings.TrimSpace(runTool(t, "", nil, oras, "resolve", "--plain-http", ref))
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("oras resolve %s: %q", ref, digest)
	}
	pinned := reg + "/apps/hello-go@" + digest

	keys := t.TempDir()
	env := append(os.Environ(), "COSIGN_PASSWORD=uni-test")
	runTool(t, keys, env, cosign, "generate-key-pair")
	key, pub := filepath.Join(keys, "cosign.key"), filepath.Join(keys, "cosign.pub")
	runTool(t, keys, env, cosign, "sign", "--yes", "--key", key, "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", pinned)
	verified := runTool(t, keys, env, cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-http-registry", pinned)
	if !strings.Contains(verified, digest) {
		t.Errorf("cosign verify does not name the artifact's digest %s:\n%s", digest, verified)
	}
	discovered := runTool(t, "", nil, oras, "discover", "--plain-http", pinned)
	if !strings.Contains(discovered, "sigstore") {
		t.Errorf("oras discover does not show the signature:\n%s", discovered)
	}

	// A signature made with another key does not verify.
	other := t.TempDir()
	runTool(t, other, env, cosign, "generate-key-pair")
	cmd := exec.Command(cosign, "verify", "--key", filepath.Join(other, "cosign.pub"), "--insecure-ignore-tlog=true", "--allow-http-registry", pinned)
	cmd.Env = env
	if msg, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("cosign verify accepted a key that did not sign:\n%s", msg)
	}
}

// runTool runs a program to completion and returns its stdout; a failure ends
// the test with its output.
func runTool(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
