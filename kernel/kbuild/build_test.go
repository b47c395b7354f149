package kbuild

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/cachedir"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/kernel"
)

// needKernelBuild stops the test unless a kernel can be built here: the
// tools, the network (apt's archive) and time (a build takes about 10
// minutes on 2 CPUs; make test gives the tests 40).
func needKernelBuild(t *testing.T, minutes int) {
	t.Helper()
	testtool.NeedDownload(t, "Debian's linux-source package (133 MiB)")
	testtool.Need(t, "make", "gcc", "flex", "bison", "bc", "lz4", "apt-get")
	testtool.NeedFile(t, "/usr/include/libelf.h", "libelf-dev")
	if d, ok := t.Deadline(); ok && time.Until(d) < time.Duration(minutes)*time.Minute {
		testtool.Missing(t, "time: this test builds a kernel and needs %d minutes; run it with -timeout 40m (make test does)", minutes)
	}
}

// TestBuildIsReproducible: linux-mini built twice, in two caches and two
// work directories, gives the same bzImage and config bytes and the same
// bundle digest; the second Build with the same inputs takes the bundle
// from its cache without compiling. The first build is the user's cache's
// (make test's mini-kernel made it), so a fresh machine compiles twice.
func TestBuildIsReproducible(t *testing.T) {
	needKernelBuild(t, 30)
	ctx := context.Background()
	userCache, err := cachedir.Sub("", cachedir.Kernels)
	if err != nil {
		t.Fatal(err)
	}
	var log testtool.Buffer
	first, err := Build(ctx, Spec{Log: &log, Nice: 10}, kernel.WithCacheDir(userCache))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	fresh := t.TempDir()
	second, err := Build(ctx, Spec{Log: &log, Nice: 10}, kernel.WithCacheDir(fresh))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	for _, f := range []string{kernel.KernelFile, kernel.ConfigFile} {
		a, err := os.ReadFile(first.Dir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(second.Dir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds (%d and %d bytes)", f, len(a), len(b))
		}
	}
	if first.Desc.Digest != second.Desc.Digest || first.Desc.Build.Key != second.Desc.Build.Key {
		t.Errorf("bundles %s (key %s) and %s (key %s)", first.Desc.Digest, first.Desc.Build.Key, second.Desc.Digest, second.Desc.Build.Key)
	}
	if !second.Desc.Microvm || second.Desc.Build.SourceVersion == "" || second.Desc.Build.ConfigDigest == "" {
		t.Errorf("descriptor: %+v, build %+v", second.Desc, second.Desc.Build)
	}

	log = testtool.Buffer{}
	again, err := Build(ctx, Spec{Log: &log}, kernel.WithCacheDir(fresh))
	if err != nil {
		t.Fatal(err)
	}
	if again.Desc.Digest != second.Desc.Digest {
		t.Errorf("third build: %s, want %s from the cache\n%s", again.Desc.Digest, second.Desc.Digest, log.String())
	}
	if !bytes.Contains([]byte(log.String()), []byte("taken from the cache")) {
		t.Errorf("third build did not say it came from the cache:\n%s", log.String())
	}
}
