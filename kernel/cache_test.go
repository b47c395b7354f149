package kernel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// needImportTools stops a test that imports a (fake) kernel: the import
// makes real GRUB images.
func needImportTools(t *testing.T) {
	t.Helper()
	testtool.Need(t, "grub-mkimage")
	testtool.NeedFile(t, "/usr/lib/grub/i386-pc", "grub-pc-bin")
	testtool.NeedFile(t, "/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")
	testtool.NeedFile(t, "/etc/debian_version", "a Debian-family host (base-files)")
}

// assertNothingLeft fails if the cache holds a bundle, a name or a work
// directory: what a failed or cancelled resolve must not leave.
func assertNothingLeft(t *testing.T, cache string) {
	t.Helper()
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if e.Name() != lockDir { // the lock files stay: they hold nothing
			t.Errorf("cache holds %s after a failure", e.Name())
		}
	}
}

func TestResolveDistroChecksTheDownload(t *testing.T) {
	needImportTools(t)
	genuine := fakeKernelDeb(t, "linux-image-9.9-test", "9.9-1", "9.9-test", 1<<10)
	tampered := bytes.Clone(genuine)
	tampered[len(tampered)-1] ^= 1
	for _, c := range []struct {
		name   string
		served []byte
	}{
		{"WrongHash", tampered},
		{"Short", genuine[:len(genuine)-1]},
		{"Long", append(bytes.Clone(genuine), 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newFakeMirror(t, c.served)
			cache := filepath.Join(t.TempDir(), "kernels")
			_, err := Resolve(context.Background(), DefaultName, WithCacheDir(cache), withLocate(m.pkg(genuine)))
			var dl *DownloadError
			if !errors.As(err, &dl) || !errors.Is(err, ErrMismatch) {
				t.Fatalf("Resolve with a %s download: %v, want a *DownloadError wrapping ErrMismatch", c.name, err)
			}
			assertNothingLeft(t, cache)
		})
	}
	t.Run("Genuine", func(t *testing.T) {
		m := newFakeMirror(t, genuine)
		cache := filepath.Join(t.TempDir(), "kernels")
		b, err := Resolve(context.Background(), DefaultName, WithCacheDir(cache), withLocate(m.pkg(genuine)))
		if err != nil {
			t.Fatal(err)
		}
		if b.Desc.Release != "9.9-test" || b.Desc.Source.Package != "linux-image-9.9-test" || b.Desc.Modules != 1 {
			t.Errorf("bundle %+v", b.Desc)
		}
	})
}

// A .deb planted in the cache (where the old apt-get download left them,
// and in a work directory) is never imported: only the downloaded bytes.
func TestResolveDistroIgnoresPlantedDeb(t *testing.T) {
	needImportTools(t)
	genuine := fakeKernelDeb(t, "linux-image-9.9-test", "9.9-1", "9.9-test", 1<<10)
	evil := fakeKernelDeb(t, "linux-image-9.9-test", "9.9-1", "6.6.6-evil", 1<<10)
	m := newFakeMirror(t, genuine)
	p := m.pkg(genuine)
	cache := filepath.Join(t.TempDir(), "kernels")
	if err := os.MkdirAll(filepath.Join(cache, ".work-planted"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{cache, filepath.Join(cache, ".work-planted")} {
		if err := os.WriteFile(filepath.Join(dir, p.File), evil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := Resolve(context.Background(), DefaultName, WithCacheDir(cache), withLocate(p))
	if err != nil {
		t.Fatal(err)
	}
	if b.Desc.Release != "9.9-test" {
		t.Errorf("imported release %s: the planted package was used", b.Desc.Release)
	}
	if m.hits.Load() != 1 {
		t.Errorf("%d downloads, want 1", m.hits.Load())
	}
}

func TestCachePermissions(t *testing.T) {
	needImportTools(t)
	genuine := fakeKernelDeb(t, "linux-image-9.9-test", "9.9-1", "9.9-test", 1<<10)
	m := newFakeMirror(t, genuine)

	open := filepath.Join(t.TempDir(), "kernels")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // whatever the umask
		t.Fatal(err)
	}
	_, err := Resolve(context.Background(), DefaultName, WithCacheDir(open), withLocate(m.pkg(genuine)))
	if err == nil || !strings.Contains(err.Error(), "writable by others") || !strings.Contains(err.Error(), open) {
		t.Errorf("a world-writable cache: %v, want a refusal naming it", err)
	}
	if m.hits.Load() != 0 {
		t.Errorf("downloaded into a world-writable cache")
	}
	if entries, _ := os.ReadDir(open); len(entries) != 0 {
		t.Errorf("wrote %d entries into a refused cache", len(entries))
	}
	deb := filepath.Join(t.TempDir(), "k.deb")
	if err := os.WriteFile(deb, genuine, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(context.Background(), deb, WithCacheDir(open)); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("Import into a world-writable cache: %v", err)
	}

	fresh := filepath.Join(t.TempDir(), "a", "kernels")
	if _, err := Resolve(context.Background(), DefaultName, WithCacheDir(fresh), withLocate(m.pkg(genuine))); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{fresh, filepath.Join(fresh, aliasDir), filepath.Join(fresh, lockDir)} {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}
}

// Concurrent cold resolves of the default bundle download and import once;
// the others wait for the lock and then find the bundle.
func TestResolveDistroOnceConcurrently(t *testing.T) {
	needImportTools(t)
	genuine := fakeKernelDeb(t, "linux-image-9.9-test", "9.9-1", "9.9-test", 1<<10)
	m := newFakeMirror(t, genuine)
	m.delay = 300 * time.Millisecond // the others arrive while the first downloads
	cache := filepath.Join(t.TempDir(), "kernels")
	const n = 3
	var wg sync.WaitGroup
	digests := make([]string, n)
	errs := make([]error, n)
	logs := make([]bytes.Buffer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := Resolve(context.Background(), DefaultName, WithCacheDir(cache), withLocate(m.pkg(genuine)), WithProgress(&logs[i]))
			if errs[i] = err; err == nil {
				digests[i] = b.Desc.Digest
			}
		}()
	}
	wg.Wait()
	waited := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("resolve %d: %v", i, errs[i])
		}
		if digests[i] != digests[0] {
			t.Errorf("resolve %d got %s, resolve 0 %s", i, digests[i], digests[0])
		}
		if strings.Contains(logs[i].String(), "waiting for another uni") {
			waited++
		}
	}
	if got := m.hits.Load(); got != 1 {
		t.Errorf("%d downloads for %d concurrent resolves, want 1", got, n)
	}
	if waited != n-1 {
		t.Errorf("%d of %d resolves said they waited, want %d", waited, n, n-1)
	}
	if dirs, _ := bundleDirs(&config{cacheDir: cache}); len(dirs) != 1 {
		t.Errorf("cache holds bundles %v", dirs)
	}
}

// cancelOn is a progress writer that cancels when a line starting with
// prefix appears, after delay.
type cancelOn struct {
	mu       sync.Mutex
	prefix   string
	delay    time.Duration
	cancel   context.CancelFunc
	canceled chan time.Time
	buf      bytes.Buffer
}

func newCancelOn(prefix string, delay time.Duration, cancel context.CancelFunc) *cancelOn {
	return &cancelOn{prefix: prefix, delay: delay, cancel: cancel, canceled: make(chan time.Time, 1)}
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil && bytes.HasPrefix(p, []byte(c.prefix)) {
		cancel := c.cancel
		c.cancel = nil
		time.AfterFunc(c.delay, func() { cancel(); c.canceled <- time.Now() })
	}
	return c.buf.Write(p)
}

// checkCancelled checks what a resolve or import cancelled mid-way gives:
// context.Canceled, promptly, and nothing left in the cache.
func checkCancelled(t *testing.T, err error, c *cancelOn, returned time.Time, cache string) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled (progress:\n%s)", err, c.buf.String())
	}
	select {
	case at := <-c.canceled:
		if d := returned.Sub(at); d > 500*time.Millisecond {
			t.Errorf("returned %v after the cancellation", d)
		}
	default:
		t.Fatal("returned before the cancellation")
	}
	assertNothingLeft(t, cache)
}

func TestImportCancelled(t *testing.T) {
	needImportTools(t)
	genuine := fakeKernelDeb(t, "linux-image-9.9-test", "9.9-1", "9.9-test", 4<<20)
	deb := filepath.Join(t.TempDir(), "k.deb")
	if err := os.WriteFile(deb, genuine, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"unpacking", "indexing the modules", "making the GRUB"} {
		t.Run(step, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := newCancelOn(step, 0, cancel)
			cache := filepath.Join(t.TempDir(), "kernels")
			_, err := Import(ctx, deb, WithCacheDir(cache), WithProgress(c))
			checkCancelled(t, err, c, time.Now(), cache)
		})
	}
	t.Run("download", func(t *testing.T) {
		m := newFakeMirror(t, genuine)
		m.delay = 2 * time.Second
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := newCancelOn("downloading", 200*time.Millisecond, cancel)
		cache := filepath.Join(t.TempDir(), "kernels")
		_, err := Resolve(ctx, DefaultName, WithCacheDir(cache), withLocate(m.pkg(genuine)), WithProgress(c))
		checkCancelled(t, err, c, time.Now(), cache)
		var dl *DownloadError
		if !errors.As(err, &dl) {
			t.Errorf("an interrupted download is not a *DownloadError: %v", err)
		}
	})
}

// The real kernel package, cancelled in the middle of its xz data archive.
func TestImportCloudKernelCancelledMidUnpack(t *testing.T) {
	needImportTools(t)
	deb := kerneltestDeb(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newCancelOn("unpacking", time.Second, cancel)
	cache := filepath.Join(t.TempDir(), "kernels")
	_, err := Import(ctx, deb, WithCacheDir(cache), WithProgress(c))
	checkCancelled(t, err, c, time.Now(), cache)
}

func TestLockFileName(t *testing.T) {
	long := strings.Repeat("registry.example/a/", 20) + "kernel:1"
	for _, name := range []string{DefaultName, "registry.example/uniforge/kernel:6.1", long, ".hidden", "../x"} {
		got := lockFileName(name)
		if got == "" || strings.ContainsAny(got, "/\\") || strings.HasPrefix(got, ".") || len(got) > 200 {
			t.Errorf("lockFileName(%q) = %q", name, got)
		}
	}
	if lockFileName("a") == lockFileName("b") || lockFileName(long) == lockFileName(long+"x") {
		t.Error("two names share a lock file")
	}
}

func TestSweepStaleWorkDirs(t *testing.T) {
	cache := t.TempDir()
	cfg := &config{cacheDir: cache}
	old := time.Now().Add(-2 * staleAge)
	stale := filepath.Join(cache, workPrefix+"dead")
	young := filepath.Join(cache, workPrefix+"young")
	foreign := filepath.Join(cache, "not-ours")
	legacy := filepath.Join(cache, ".apt-123")
	legacyYoung := filepath.Join(cache, ".import-456")
	for _, d := range []string{stale, young, foreign, legacy, legacyYoung} {
		if err := os.MkdirAll(filepath.Join(d, "deb"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chtimes(stale, old, old)
	os.Chtimes(foreign, old, old)
	ancient := time.Now().Add(-2 * legacyStaleAge)
	os.Chtimes(legacy, ancient, ancient)
	live, done, err := workDir(cfg) // locked by us: kept
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	os.Chtimes(live, old, old)
	sweepStale(cfg)
	for d, want := range map[string]bool{stale: false, young: true, foreign: true, live: true, legacy: false, legacyYoung: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists=%v after the sweep, want %v", filepath.Base(d), err == nil, want)
		}
	}
	done()
	if _, err := os.Stat(live); err == nil {
		t.Error("done left the work directory")
	}
}
