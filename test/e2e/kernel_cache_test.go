package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// The kernel cache against a careless user and an attacker (issue 6,
// findings 3 and 11, and the kernel parts of 4 and 10). Each test starts
// from its own empty UNI_CACHE_DIR, so each downloads and imports the
// distribution's cloud kernel (about 27 MB) cold.

// needColdKernel stops a test that makes the distribution kernel bundle.
func needColdKernel(t *testing.T) {
	t.Helper()
	testtool.NeedDownload(t, "the distribution's cloud kernel package (about 27 MB)")
	testtool.NeedFile(t, "/etc/debian_version", "a Debian-family host (base-files)")
	testtool.Need(t, "apt-get", "apt-cache", "grub-mkimage")
}

// uniCmd is uni with args, run in dir with its own cache.
func uniCmd(t *testing.T, cache, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(uniBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "UNI_CACHE_DIR="+cache)
	return cmd
}

// runUni runs uni to completion with its own cache: combined output, exit status.
func runUni(t *testing.T, cache, dir string, args ...string) (string, int) {
	t.Helper()
	out, err := uniCmd(t, cache, dir, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("uni %v: %v", args, err)
	}
	return string(out), 0
}

var digestDir = regexp.MustCompile(`^[0-9a-f]{64}$`)

// cacheEntries lists a kernel cache's bundles and its work directories.
func cacheEntries(t *testing.T, kernels string) (bundles, work []string) {
	t.Helper()
	entries, err := os.ReadDir(kernels)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case digestDir.MatchString(e.Name()):
			bundles = append(bundles, e.Name())
		case strings.HasPrefix(e.Name(), "."):
			work = append(work, e.Name())
		}
	}
	return bundles, work
}

// imageKernel reads the kernel reference of a built image's config.json.
func imageKernel(t *testing.T, out string) (release, digest string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Kernel struct{ Release, Digest string }
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Kernel.Release, cfg.Kernel.Digest
}

// A kernel cache that others can write to is refused before anything is
// downloaded into it, with a message that names it and says how to fix it.
func TestKernelCacheRefusesWorldWritable(t *testing.T) {
	needColdKernel(t)
	ctx := helloGoContext(t, t.TempDir())
	cache := t.TempDir()
	kernels := filepath.Join(cache, "kernels")
	if err := os.Mkdir(kernels, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kernels, 0o777); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image")
	log, status := runUni(t, cache, ctx, "build", "-o", out, ".")
	if status == 0 {
		t.Fatalf("uni build with a world-writable kernel cache succeeded:\n%s", log)
	}
	if !strings.Contains(log, kernels) || !strings.Contains(log, "writable by others") || !strings.Contains(log, "chmod go-w") {
		t.Errorf("the error does not name the cache and the fix:\n%s", log)
	}
	if strings.Contains(log, "downloading") {
		t.Errorf("downloaded into the refused cache:\n%s", log)
	}
	if entries, _ := os.ReadDir(kernels); len(entries) != 0 {
		t.Errorf("wrote %d entries into the refused cache", len(entries))
	}
}

// cloudKernelPackage asks apt which package and version the cloud kernel
// metapackage depends on, as uni will.
func cloudKernelPackage(t *testing.T) (name, version string) {
	t.Helper()
	out, err := exec.Command("apt-cache", "show", "--no-all-versions", "linux-image-cloud-amd64").Output()
	if err != nil {
		t.Fatalf("apt-cache show: %v", err)
	}
	m := regexp.MustCompile(`(?m)^Depends:.*?(linux-image-[^ ,]+) \(= ([^)]+)\)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no linux-image dependency in:\n%s", out)
	}
	return string(m[1]), string(m[2])
}

// plantedKernelDeb is a well-formed kernel package with the real package's
// name and version but a kernel whose release says it was planted.
func plantedKernelDeb(t *testing.T, pkg, version, release string) []byte {
	t.Helper()
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x020f)
	binary.LittleEndian.PutUint16(img[0x20e:], 0x100)
	binary.LittleEndian.PutUint16(img[0x236:], 1)
	copy(img[0x300:], release+" (attacker@example) #1\x00")
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nDescription: planted\n", pkg, version)
	tgz := func(files map[string][]byte) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for name, body := range files {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
			tw.Write(body)
		}
		tw.Close()
		gz.Close()
		return buf.Bytes()
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		body []byte
	}{
		{"debian-binary", []byte("2.0\n")},
		{"control.tar.gz", tgz(map[string][]byte{"./control": []byte(control)})},
		{"data.tar.gz", tgz(map[string][]byte{"./boot/vmlinuz-" + release: img})},
	} {
		fmt.Fprintf(&ar, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m.name, "0", "0", "0", "100644", len(m.body))
		ar.Write(m.body)
		if len(m.body)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	return ar.Bytes()
}

// A .deb planted in the kernel cache, named as the real package and
// carrying its name and version, is not what the image boots: uni imports
// only what it downloaded and checked against apt's index.
func TestKernelCacheIgnoresPlantedDeb(t *testing.T) {
	needColdKernel(t)
	ctx := helloGoContext(t, t.TempDir())
	pkg, version := cloudKernelPackage(t)
	const plantedRelease = "6.6.6-planted"
	planted := plantedKernelDeb(t, pkg, version, plantedRelease)
	cache := t.TempDir()
	kernels := filepath.Join(cache, "kernels")
	file := fmt.Sprintf("%s_%s_amd64.deb", pkg, strings.ReplaceAll(version, ":", "%3a"))
	// Where apt-get download used to leave packages, and where uni works.
	for _, dir := range []string{kernels, filepath.Join(kernels, ".work-planted"), filepath.Join(kernels, ".apt-planted")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), planted, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "image")
	log, status := runUni(t, cache, ctx, "build", "-o", out, ".")
	if status != 0 {
		t.Fatalf("uni build: exit %d\n%s", status, log)
	}
	release, _ := imageKernel(t, out)
	if release == plantedRelease || strings.Contains(log, plantedRelease) {
		t.Fatalf("the image's kernel is the planted one (%s):\n%s", release, log)
	}
	if want := strings.TrimPrefix(pkg, "linux-image-"); release != want {
		t.Errorf("kernel release %q, want %q (of %s)", release, want, pkg)
	}
	if strings.Count(log, "downloaded "+pkg) != 1 {
		t.Errorf("the package was not downloaded afresh:\n%s", log)
	}
}

// Two cold builds at once both succeed, and the kernel package is
// downloaded and imported once: the second waits for the first.
func TestKernelCacheConcurrentColdBuilds(t *testing.T) {
	needColdKernel(t)
	ctx := helloGoContext(t, t.TempDir())
	cache := t.TempDir()
	var wg sync.WaitGroup
	logs := make([]string, 2)
	status := make([]int, 2)
	outs := make([]string, 2)
	for i := range 2 {
		outs[i] = filepath.Join(t.TempDir(), "image")
		wg.Add(1)
		go func() {
			defer wg.Done()
			logs[i], status[i] = runUni(t, cache, ctx, "build", "-o", outs[i], ".")
		}()
	}
	wg.Wait()
	for i := range 2 {
		if status[i] != 0 {
			t.Fatalf("build %d: exit %d\n%s", i, status[i], logs[i])
		}
	}
	all := logs[0] + logs[1]
	if n := strings.Count(all, "downloaded linux-image-"); n != 1 {
		t.Errorf("%d downloads for two concurrent cold builds, want 1:\n%s\n---\n%s", n, logs[0], logs[1])
	}
	if n := strings.Count(all, "unpacked linux-image-"); n != 1 {
		t.Errorf("%d imports, want 1", n)
	}
	if !strings.Contains(all, "waiting for another uni") {
		t.Errorf("neither build waited for the other:\n%s\n---\n%s", logs[0], logs[1])
	}
	bundles, work := cacheEntries(t, filepath.Join(cache, "kernels"))
	if len(bundles) != 1 || len(work) != 0 {
		t.Errorf("cache holds bundles %v and work directories %v", bundles, work)
	}
	_, d0 := imageKernel(t, outs[0])
	_, d1 := imageKernel(t, outs[1])
	if d0 != d1 || d0 != "sha256:"+bundles[0] {
		t.Errorf("images use kernels %s and %s, the cache holds %v", d0, d1, bundles)
	}
}

// SIGINT while the kernel package is being unpacked (the pure-Go xz
// decompression) stops uni promptly with exit 130, and leaves no bundle,
// no name and no work directory in the cache.
func TestKernelCacheInterruptDuringImport(t *testing.T) {
	needColdKernel(t)
	ctx := helloGoContext(t, t.TempDir())
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "image")
	cmd := uniCmd(t, cache, ctx, "build", "-o", out, ".")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()

	var log testtool.Buffer
	unpacking := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(&log, sc.Text())
			if !seen && strings.HasPrefix(sc.Text(), "unpacking linux-image-") {
				seen = true
				close(unpacking)
			}
		}
	}()
	select {
	case <-unpacking:
	case err := <-done:
		done <- err
		t.Fatalf("uni build ended (%v) before unpacking the kernel:\n%s", err, log.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("no unpacking within 5 minutes:\n%s", log.String())
	}
	time.Sleep(time.Second) // well inside the xz data (it takes several seconds)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("uni build still running 10s after SIGINT:\n%s", log.String())
	}
	took := time.Since(sent)
	t.Logf("stopped %v after SIGINT", took)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("uni build after SIGINT: %v, want exit status 130:\n%s", err, log.String())
	}
	if took > 2*time.Second {
		t.Errorf("uni build took %v to stop after SIGINT", took)
	}
	kernels := filepath.Join(cache, "kernels")
	bundles, work := cacheEntries(t, kernels)
	if len(bundles) != 0 || len(work) != 0 {
		t.Errorf("an interrupted import left bundles %v and work directories %v", bundles, work)
	}
	if names, _ := os.ReadDir(filepath.Join(kernels, "names")); len(names) != 0 {
		t.Errorf("an interrupted import left %d names", len(names))
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("an interrupted build left its output %s", out)
	}
}
