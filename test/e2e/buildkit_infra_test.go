package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestBuildkitInfra proves the BuildKit test infrastructure on a plain
// Dockerfile, before any Unifile: a real buildkitd (runc, native
// snapshotter) pulls a base image made from Debian packages out of a real
// local registry, RUNs a shell command in it, and exports the result; once
// through `docker buildx build` with a remote-driver builder, once through
// buildctl. A rebuild shows the RUN as CACHED, so later tests can rely on
// the shared daemon's cache.
func TestBuildkitInfra(t *testing.T) {
	bk := testtool.Buildkitd(t)
	addr := startRegistry(t)
	base := pushDebianShell(t, addr)
	t.Logf("buildkitd at %s; buildx client: %s", bk.Addr(), bk.BuildxClient(t))

	t.Run("buildx", func(t *testing.T) {
		ctx := t.TempDir()
		writeFiles(t, ctx, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo hi > /hello\n"})
		out := filepath.Join(t.TempDir(), "out")
		progress, err := bk.BuildxBuild(t, ctx, "-o", "type=local,dest="+out, ".")
		if err != nil {
			t.Fatalf("%v\n%s\nbuildkitd log:\n%s", err, progress, bk.DaemonLog())
		}
		if got, err := os.ReadFile(filepath.Join(out, "hello")); err != nil || string(got) != "hi\n" {
			t.Fatalf("out/hello = %q, %v; want \"hi\\n\"; progress:\n%s", got, err, progress)
		}
		if !strings.Contains(progress, "RUN echo hi > /hello") {
			t.Errorf("plain progress names no RUN vertex:\n%s", progress)
		}
		// A well-formed base draws no warning (a config without a platform did).
		if strings.Contains(progress, "WARN:") {
			t.Errorf("BuildKit warned about the build:\n%s", progress)
		}

		// The same build again, on the same daemon: the RUN comes from its cache.
		again, err := bk.BuildxBuild(t, ctx, "-o", "type=local,dest="+filepath.Join(t.TempDir(), "out"), ".")
		if err != nil {
			t.Fatalf("%v\n%s", err, again)
		}
		if run, ok := testtool.ParseProgress(again).Find("RUN echo hi > /hello"); !ok || !run.Cached {
			t.Errorf("rebuild did not take the RUN from the cache (%+v):\n%s", run, again)
		}
	})

	// --push to the local registry, as `-t REF --push` of a Unifile will:
	// buildkitd talks plain HTTP to 127.0.0.1 by itself.
	t.Run("push", func(t *testing.T) {
		ctx := t.TempDir()
		writeFiles(t, ctx, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo pushed > /pushed\n"})
		tag := addr + "/smoke/pushed:1"
		progress, err := bk.BuildxBuild(t, ctx, "-t", tag, "--push", ".")
		if err != nil {
			t.Fatalf("%v\n%s\nbuildkitd log:\n%s", err, progress, bk.DaemonLog())
		}
		ref, err := name.ParseReference(tag)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
		if err != nil {
			t.Fatalf("the pushed image is not in the registry: %v\n%s", err, progress)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("pushed image has %d layers (%v), want the base's and the RUN's", len(layers), err)
		}
	})

	t.Run("buildctl", func(t *testing.T) {
		ctx := t.TempDir()
		writeFiles(t, ctx, map[string]string{"Dockerfile": "FROM " + base + "\nRUN mkdir -p /made/here && echo from-buildctl > /made/here/file && cat /made/here/file\n"})
		out := filepath.Join(t.TempDir(), "out")
		progress, err := bk.BuildctlBuild(t, ctx, "--frontend", "dockerfile.v0",
			"--local", "context=.", "--local", "dockerfile=.", "--output", "type=local,dest="+out)
		if err != nil {
			t.Fatalf("%v\n%s\nbuildkitd log:\n%s", err, progress, bk.DaemonLog())
		}
		if got, err := os.ReadFile(filepath.Join(out, "made", "here", "file")); err != nil || string(got) != "from-buildctl\n" {
			t.Fatalf("out/made/here/file = %q, %v; progress:\n%s", got, err, progress)
		}
		// cat's output shows in the RUN's plain progress.
		if run, ok := testtool.ParseProgress(progress).Find("RUN mkdir"); !ok || run.Cached || !slices.Equal(run.Logs, []string{"from-buildctl"}) {
			t.Errorf("plain progress lacks the RUN's output (%+v):\n%s", run, progress)
		}
		// The base is busybox: its shell came along into the exported root.
		if _, err := os.Lstat(filepath.Join(out, "bin", "sh")); err != nil {
			t.Errorf("exported root lacks the base's /bin/sh: %v", err)
		}
	})
}
