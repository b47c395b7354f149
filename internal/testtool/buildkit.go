package testtool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Buildkit is a real buildkitd (the OCI worker with Debian's runc and the
// native snapshotter, as root) that every test of one test binary shares,
// so a later test sees the cache an earlier one filled. Get it with
// Buildkitd; the package's TestMain stops it with StopDaemons.
//
// It runs clients against itself: buildctl, and buildx with a remote-driver
// builder kept in a private DOCKER_CONFIG, so nothing of the user's docker
// configuration is read or changed.
type Buildkit struct {
	dir      string // private temp dir: config, socket, state root, docker config
	addr     string // unix://…/buildkitd.sock
	buildctl string
	cmd      *exec.Cmd
	log      *Buffer
	exited   chan struct{} // closed when buildkitd has exited

	buildxOnce sync.Once
	buildx     *buildxClient
	buildxErr  error
	buildxMiss string // why buildx cannot be had, for Missing
}

// buildxClient is how the tests run buildx against the daemon.
type buildxClient struct {
	argv0        []string // {docker, buildx}, or {buildx} when there is no docker client
	dockerConfig string
	builder      string
	note         string // which client, for the test log
}

// buildxBuilder names the remote-driver builder in the private docker config.
const buildxBuilder = "uni-test"

// daemons is the test binary's one buildkitd: a daemon outlives the tests
// that share it, so it lives at package level, started by the first
// Buildkitd call and stopped by StopDaemons.
var daemons struct {
	mu      sync.Mutex
	bk      *Buildkit
	err     error // a failed start fails every later caller the same way
	started bool
}

// Buildkitd returns the test binary's buildkitd, starting it on first use.
// A missing buildkitd, buildctl or runc, or a test not running as root,
// stops t through Missing (a failure under CI=true, a skip elsewhere); a
// daemon that does not come up fails t with its log.
func Buildkitd(t testing.TB) *Buildkit {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root: buildkitd runs its OCI worker with runc as root here (uid %d)", os.Geteuid())
		return nil
	}
	var paths []string
	for _, p := range []string{"buildkitd", "buildctl"} {
		path, err := exec.LookPath(p)
		if err != nil {
			Missing(t, "%s is not on PATH (`make buildkit` builds it into $(go env GOPATH)/bin)", p)
			return nil
		}
		paths = append(paths, path)
	}
	runc := runcPath()
	if runc == "" {
		Missing(t, "runc is not on PATH nor in /usr/sbin (apt-get install runc)")
		return nil
	}
	daemons.mu.Lock()
	defer daemons.mu.Unlock()
	if !daemons.started {
		daemons.started = true
		daemons.bk, daemons.err = startBuildkitd(paths[0], paths[1], runc)
	}
	if daemons.err != nil {
		t.Fatalf("buildkitd: %v", daemons.err)
	}
	select {
	case <-daemons.bk.exited:
		t.Fatalf("buildkitd died during the tests (%v); its log:\n%s", daemons.bk.cmd.ProcessState, daemons.bk.DaemonLog())
	default:
	}
	return daemons.bk
}

// StopDaemons stops what Buildkitd started, if anything: it kills the
// daemon's process group, unmounts whatever it left mounted under its
// directory and removes that directory. Call it from TestMain after m.Run;
// it returns an error when something could not be cleaned up (then the
// directory is left in place rather than removed across a mount).
func StopDaemons() error {
	daemons.mu.Lock()
	defer daemons.mu.Unlock()
	bk := daemons.bk
	daemons.bk, daemons.err, daemons.started = nil, nil, false
	if bk == nil {
		return nil
	}
	return bk.stop()
}

// Addr is the daemon's address, unix://…/buildkitd.sock, as buildctl
// --addr and `docker buildx create --driver remote` take it.
func (b *Buildkit) Addr() string { return b.addr }

// DaemonLog is what buildkitd has printed so far, for failure messages.
func (b *Buildkit) DaemonLog() string { return b.log.String() }

// Buildctl runs `buildctl --addr ADDR args…` in dir and returns its
// combined output. The error names the command line and wraps the
// *exec.ExitError.
func (b *Buildkit) Buildctl(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), b.buildctl, append([]string{"--addr", b.addr}, args...)...)
	cmd.Dir = dir
	return run(t, cmd, "buildctl "+strings.Join(args, " "))
}

// BuildctlBuild is Buildctl with `build --progress=plain` before args,
// so the output holds BuildKit's plain progress (vertex names, CACHED).
func (b *Buildkit) BuildctlBuild(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	return b.Buildctl(t, dir, append([]string{"build", "--progress=plain"}, args...)...)
}

// Buildx runs `docker buildx args…` in dir against the daemon, through the
// remote-driver builder of a private DOCKER_CONFIG, and returns its
// combined output. Without a docker client it runs the buildx binary on
// its own, which takes the same arguments (BuildxClient says which). A
// missing buildx stops t through Missing.
func (b *Buildkit) Buildx(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	c := b.buildxClient(t)
	if c == nil {
		return "", errors.New("buildx is missing")
	}
	argv := append(append([]string{}, c.argv0...), args...)
	cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+c.dockerConfig, "BUILDX_BUILDER="+c.builder)
	return run(t, cmd, strings.Join(argv, " "))
}

// BuildxBuild is Buildx with `build --progress=plain` before args, e.g.
// BuildxBuild(t, ctxDir, "-f", "Unifile", "-o", "type=local,dest="+out, ".").
func (b *Buildkit) BuildxBuild(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	return b.Buildx(t, dir, append([]string{"build", "--progress=plain"}, args...)...)
}

// BuildxClient says how Buildx runs buildx: "docker buildx" through the
// docker CLI, or "buildx" standalone where there is no docker client.
// It stops t through Missing when buildx is missing.
func (b *Buildkit) BuildxClient(t testing.TB) string {
	t.Helper()
	c := b.buildxClient(t)
	if c == nil {
		return ""
	}
	return c.note
}

// buildxClient creates the remote-driver builder once, on first use.
func (b *Buildkit) buildxClient(t testing.TB) *buildxClient {
	t.Helper()
	b.buildxOnce.Do(func() { b.buildx, b.buildxMiss, b.buildxErr = b.setUpBuildx() })
	if b.buildxMiss != "" {
		Missing(t, "%s", b.buildxMiss)
		return nil
	}
	if b.buildxErr != nil {
		t.Fatalf("buildx: %v", b.buildxErr)
	}
	return b.buildx
}

// setUpBuildx links the buildx plugin into a private docker config and
// creates a builder there that drives this daemon. The string result,
// when not empty, says what is missing.
func (b *Buildkit) setUpBuildx() (*buildxClient, string, error) {
	plugin := buildxPlugin()
	if plugin == "" {
		return nil, "buildx: no docker-buildx in ~/.docker/cli-plugins and no buildx on PATH (`make buildkit` installs it)", nil
	}
	c := &buildxClient{dockerConfig: filepath.Join(b.dir, "docker"), builder: buildxBuilder}
	plugins := filepath.Join(c.dockerConfig, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o700); err != nil {
		return nil, "", err
	}
	if err := os.Symlink(plugin, filepath.Join(plugins, "docker-buildx")); err != nil {
		return nil, "", err
	}
	if docker, err := exec.LookPath("docker"); err == nil {
		c.argv0 = []string{docker, "buildx"}
		c.note = "docker buildx (" + docker + ", plugin " + plugin + ")"
	} else {
		c.argv0 = []string{plugin}
		c.note = "buildx standalone (" + plugin + "): no docker client on PATH"
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+c.dockerConfig)
	for _, args := range [][]string{
		{"create", "--name", c.builder, "--driver", "remote", b.addr},
		{"inspect", "--bootstrap", c.builder},
	} {
		argv := append(append([]string{}, c.argv0...), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
	}
	return c, "", nil
}

// run runs cmd to completion and returns its combined output; the error
// names the command (what) and wraps the cause.
func run(t testing.TB, cmd *exec.Cmd, what string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s: %v (%.1fs)", what, errOr(err, "ok"), time.Since(start).Seconds())
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", what, err)
	}
	return out.String(), nil
}

func errOr(err error, ok string) any {
	if err != nil {
		return err
	}
	return ok
}

// runcPath finds the OCI runtime: runc on PATH, else Debian's /usr/sbin/runc
// (PATH may lack /usr/sbin).
func runcPath() string {
	if p, err := exec.LookPath("runc"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/runc"); err == nil && !st.IsDir() {
		return "/usr/sbin/runc"
	}
	return ""
}

// buildxPlugin finds the buildx binary: where the docker CLI looks for its
// plugins (make test links it into ~/.docker/cli-plugins), else buildx on
// PATH.
func buildxPlugin() string {
	var dirs []string
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".docker"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "cli-plugins", "docker-buildx")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				return r
			}
		}
	}
	for _, d := range []string{"/usr/local/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins", "/usr/lib/docker/cli-plugins"} {
		if p := filepath.Join(d, "docker-buildx"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("buildx"); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// buildkitdConfig is the daemon's configuration: everything it keeps lives
// under dir, so several test binaries may each run one at once. The OTEL
// socket would otherwise default to a shared /run/buildkit path.
func buildkitdConfig(dir, runc string) string {
	return fmt.Sprintf(`root = %q
[log]
  format = "text"
[grpc]
  address = [%q]
[otel]
  socketPath = %q
[cdi]
  disabled = true
[worker.oci]
  enabled = true
  snapshotter = "native"
  binary = %q
  networkMode = "host"
  gc = false
[worker.containerd]
  enabled = false
`, filepath.Join(dir, "root"), "unix://"+filepath.Join(dir, "buildkitd.sock"),
		filepath.Join(dir, "otel-grpc.sock"), runc)
}

// startBuildkitd starts buildkitd in its own process group and waits until
// `buildctl debug workers` answers.
func startBuildkitd(buildkitd, buildctl, runc string) (*Buildkit, error) {
	sweepStale()
	// os.MkdirTemp, not t.TempDir: the daemon outlives the test that starts
	// it, and a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", buildkitdDirPrefix)
	if err != nil {
		return nil, err
	}
	b := &Buildkit{
		dir:      dir,
		addr:     "unix://" + filepath.Join(dir, "buildkitd.sock"),
		buildctl: buildctl,
		log:      &Buffer{},
		exited:   make(chan struct{}),
	}
	cfg := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte(buildkitdConfig(dir, runc)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b.cmd = exec.Command(buildkitd, "--config", cfg)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	// Its own process group, so stop reaches the runc children too; and
	// killed if the test binary dies without calling StopDaemons.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits:
		// keep this goroutine on its thread for the daemon's whole life.
		runtime.LockOSThread()
		if err := b.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		b.cmd.Wait()
		close(b.exited)
	}()
	if err := <-started; err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", buildkitd, err)
	}
	if err := b.waitReady(60 * time.Second); err != nil {
		if stopErr := b.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return b, nil
}

// buildkitdDirPrefix starts the name of every daemon's temp directory.
const buildkitdDirPrefix = "uni-buildkitd-"

// sweepStale removes the directories of daemons whose test binary died
// without StopDaemons (a `go test -timeout` panic skips TestMain's end;
// Pdeathsig has killed the daemon itself). A live buildkitd holds a flock
// on root/buildkitd.lock, so a directory older than a minute whose lock
// can be taken, or that has none, belongs to no daemon. Best effort:
// what cannot be cleaned is left alone.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildkitdDirPrefix+"*"))
	for _, dir := range dirs {
		// A young directory may be a daemon starting right now.
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		lock, err := os.Open(filepath.Join(dir, "root", "buildkitd.lock"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			held := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
			lock.Close()
			if held {
				continue
			}
		}
		if unmountUnder(dir) == nil {
			os.RemoveAll(dir)
		}
	}
}

// waitReady polls `buildctl debug workers` until the daemon answers.
func (b *Buildkit) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last []byte
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			return fmt.Errorf("buildkitd exited (%v) before it answered; its log:\n%s", b.cmd.ProcessState, b.log.String())
		default:
		}
		out, err := exec.Command(b.buildctl, "--addr", b.addr, "debug", "workers").CombinedOutput()
		if err == nil {
			return nil
		}
		last = out
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("buildkitd did not answer on %s within %s; buildctl said:\n%s\nits log:\n%s", b.addr, limit, last, b.log.String())
}

// stop ends the daemon's process group (SIGTERM, then SIGKILL after 20 s),
// unmounts what is still mounted under its directory and removes it. The
// root holds root-owned, read-only snapshot trees, which RemoveAll as root
// deletes; a mount it could not undo leaves the directory in place, since
// removing across a mount would delete what the mount shows.
func (b *Buildkit) stop() error {
	pgid := b.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-b.exited
	}
	// Whatever else of the group is left (a runc child) goes too.
	syscall.Kill(-pgid, syscall.SIGKILL)
	if err := unmountUnder(b.dir); err != nil {
		return fmt.Errorf("buildkitd stopped, but %s stays: %w", b.dir, err)
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("removing buildkitd's directory: %w", err)
	}
	return nil
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
