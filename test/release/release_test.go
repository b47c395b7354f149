// Package release tests the release build: .goreleaser.yml with the real
// goreleaser (`make $(go env GOPATH)/bin/goreleaser` builds it), and
// `go install …/cmd/uni@VERSION` through a module proxy made from the
// committed HEAD, as a Go user would install uni. docs/releasing.md.
package release

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

const (
	modulePath = "github.com/uniforge/packer-plugin-unikernel"
	pluginName = "packer-plugin-unikernel"
)

// platforms are the release's targets, for the plugin and uni alike.
var platforms = []struct{ os, arch string }{
	{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"},
}

// apiVersion is the Packer plugin API version the SDK speaks, the x5.0 in
// the release names.
func apiVersion() string { return "x" + plugin.APIVersionMajor + "." + plugin.APIVersionMinor }

// repoRoot is the top of the checkout this test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	testtool.Need(t, "git")
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// run runs name args in dir with env added to the test's environment and
// returns its standard output; it fails the test with both outputs.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestGoreleaserCheck(t *testing.T) {
	gr := testtool.Need(t, "goreleaser")[0]
	root := repoRoot(t)
	run(t, root, nil, gr, "check")
}

// TestSnapshotRelease runs `goreleaser release --snapshot` on a clone of the
// committed HEAD, as CI runs it, and checks what a release would upload
// (checkRelease). The version is the snapshot template's.
func TestSnapshotRelease(t *testing.T) {
	testtool.Slow(t, "builds the plugin and uni for four platforms")
	r := newRelease(t, "")
	r.goreleaser(t, "release", "--snapshot", "--clean", "--skip=publish")
	// No tag (fetched with --no-tags): goreleaser's v0.0.0, one patch up.
	r.check(t, "0.0.1-dev+"+r.short)
}

// TestTaggedRelease runs a real release of a clone of HEAD tagged v1.2.3,
// all but the upload: goreleaser's checks of the tag and the tree pass, and
// every file says 1.2.3.
func TestTaggedRelease(t *testing.T) {
	testtool.Slow(t, "builds the plugin and uni for four platforms")
	r := newRelease(t, "v1.2.3")
	r.goreleaser(t, "release", "--clean", "--skip=publish,announce")
	r.check(t, "1.2.3")
}

// release is a clone of the committed HEAD for goreleaser to build, and
// where its files go.
type release struct {
	src, dist, cfg, api string
	short               string    // the abbreviated commit
	when                time.Time // the commit's time
	tmp                 string
}

// newRelease clones HEAD, tagged tag unless tag is "". goreleaser reads the
// commit, its time and the remote from git, and without a remote it says
// "none" for all of them: a release runs in a clone with GitHub as origin,
// so the test does too, and the checkout's own state does not matter.
func newRelease(t *testing.T, tag string) *release {
	t.Helper()
	testtool.Need(t, "goreleaser")
	root := repoRoot(t)
	r := &release{tmp: t.TempDir()}
	r.src = filepath.Join(r.tmp, "src")
	r.dist = filepath.Join(r.tmp, "dist")
	commit := strings.TrimSpace(run(t, root, nil, "git", "rev-parse", "HEAD"))
	run(t, r.tmp, nil, "git", "init", "-q", r.src)
	run(t, r.src, nil, "git", "fetch", "-q", "--depth=1", "--no-tags", root, commit)
	run(t, r.src, nil, "git", "checkout", "-q", commit)
	run(t, r.src, nil, "git", "remote", "add", "origin", "https://"+modulePath+".git")
	if tag != "" {
		run(t, r.src, nil, "git", "-c", "user.name=test", "-c", "user.email=test@example.com", "tag", "-a", tag, "-m", tag)
	}
	r.short = strings.TrimSpace(run(t, r.src, nil, "git", "rev-parse", "--short", "HEAD"))
	var err error
	r.when, err = time.Parse(time.RFC3339, strings.TrimSpace(run(t, r.src, nil, "git", "show", "-s", "--format=%cI", "HEAD")))
	if err != nil {
		t.Fatal(err)
	}

	// goreleaser has no --dist flag: a copy of the config names the
	// directory, outside the tree it builds.
	cfg, err := os.ReadFile(filepath.Join(r.src, ".goreleaser.yml"))
	if err != nil {
		t.Fatal(err)
	}
	r.cfg = filepath.Join(r.tmp, "goreleaser.yml")
	if err := os.WriteFile(r.cfg, fmt.Appendf(cfg, "\ndist: %s\n", r.dist), 0o644); err != nil {
		t.Fatal(err)
	}
	r.api = strings.TrimSpace(run(t, r.src, nil, filepath.Join(r.src, "scripts", "plugin-api-version.sh")))
	if r.api != apiVersion() {
		t.Fatalf("scripts/plugin-api-version.sh says %q, the SDK speaks %q", r.api, apiVersion())
	}
	return r
}

func (r *release) goreleaser(t *testing.T, args ...string) {
	t.Helper()
	run(t, r.src, []string{"API_VERSION=" + r.api}, "goreleaser", append(args, "--config", r.cfg)...)
}

// check checks what goreleaser wrote for version v: every archive's name,
// the SHA256SUMS, the binaries' platforms, the commit's time as every
// file's time (reproducible archives), that the linux/amd64 plugin tells
// Packer v and the SDK's API version and installs with the real packer,
// and that uni says v.
func (r *release) check(t *testing.T, v string) {
	t.Helper()
	var meta struct{ Version string }
	readJSON(t, filepath.Join(r.dist, "metadata.json"), &meta)
	if meta.Version != v {
		t.Fatalf("metadata.json says version %q, want %q", meta.Version, v)
	}
	api, dist := r.api, r.dist

	var want []string
	for _, p := range platforms {
		want = append(want,
			fmt.Sprintf("%s_v%s_%s_%s_%s.zip", pluginName, v, api, p.os, p.arch),
			fmt.Sprintf("uni_%s_%s_%s.tar.gz", v, p.os, p.arch))
	}
	sort.Strings(want)
	sums := readSums(t, filepath.Join(dist, fmt.Sprintf("%s_v%s_SHA256SUMS", pluginName, v)))
	var listed []string
	for name := range sums {
		listed = append(listed, name)
	}
	sort.Strings(listed)
	if strings.Join(listed, "\n") != strings.Join(want, "\n") {
		t.Fatalf("SHA256SUMS lists\n%s\nwant\n%s", strings.Join(listed, "\n"), strings.Join(want, "\n"))
	}
	for _, name := range want {
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatalf("archive listed in SHA256SUMS: %v", err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sums[name] {
			t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, got, sums[name])
		}
	}

	for _, p := range platforms {
		bin := fmt.Sprintf("%s_v%s_%s_%s_%s", pluginName, v, api, p.os, p.arch)
		plug := extractZip(t, filepath.Join(dist, bin+".zip"), bin, r.tmp, r.when)
		checkPlatform(t, plug, p.os, p.arch)
		uni := extractTarGz(t, filepath.Join(dist, fmt.Sprintf("uni_%s_%s_%s.tar.gz", v, p.os, p.arch)), "uni", filepath.Join(r.tmp, p.os+"_"+p.arch), r.when)
		checkPlatform(t, uni, p.os, p.arch)
		if p.os != "linux" || p.arch != "amd64" {
			continue
		}
		var desc struct {
			Version    string `json:"version"`
			APIVersion string `json:"api_version"`
		}
		if err := json.Unmarshal([]byte(run(t, r.tmp, nil, plug, "describe")), &desc); err != nil {
			t.Fatalf("%s describe: %v", bin, err)
		}
		if desc.Version != v || desc.APIVersion != api {
			t.Errorf("%s describe: version %q api %q, want %q %q", bin, desc.Version, desc.APIVersion, v, api)
		}
		if got, wantV := strings.TrimSpace(run(t, r.tmp, nil, uni, "version")), "uni "+v; got != wantV {
			t.Errorf("released uni version says %q, want %q", got, wantV)
		}
		installPlugin(t, plug, strings.Split(v, "+")[0], api)
	}
}

// installPlugin installs the plugin binary with the real packer, as
// docs/releasing.md tells users to, into a temporary plugin directory, and
// checks the name Packer gave it: it drops the build metadata.
func installPlugin(t *testing.T, plug, v, api string) {
	t.Helper()
	packer := testtool.Need(t, "packer")[0]
	dir := t.TempDir()
	env := []string{"PACKER_PLUGIN_PATH=" + filepath.Join(dir, "plugins"), "PACKER_CONFIG_DIR=" + filepath.Join(dir, "config"), "CHECKPOINT_DISABLE=1"}
	run(t, dir, env, packer, "plugins", "install", "--path", plug, "github.com/uniforge/unikernel")
	want := filepath.Join(dir, "plugins", "github.com", "uniforge", "unikernel", fmt.Sprintf("%s_v%s_%s_linux_amd64", pluginName, v, api))
	if got := strings.TrimSpace(run(t, dir, env, packer, "plugins", "installed")); got != want {
		t.Errorf("packer plugins installed says %q, want %q", got, want)
	}
}

// TestModuleZip makes the module zip of the committed HEAD as a module
// proxy would, and checks what `go install …/cmd/uni@VERSION` needs of it:
// the zip can be made at all (a file name Windows reserves, such as a fuzz
// seed named "nul", makes the proxy refuse the whole module), it holds the
// committed guest init, and its go.mod has no replace or exclude (go
// install refuses those; go.work carries the SDK's replace instead).
func TestModuleZip(t *testing.T) {
	root := repoRoot(t)
	commit := strings.TrimSpace(run(t, root, nil, "git", "rev-parse", "HEAD"))
	v := "v0.0.0-ci.g" + commit[:12]
	dir := filepath.Join(makeProxy(t, root, commit, v), filepath.FromSlash(escapedPath(t)), "@v")

	cf, err := modzip.CheckZip(module.Version{Path: modulePath, Version: v}, filepath.Join(dir, v+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go.mod", "go.sum", "cmd/uni/main.go", "internal/initbin/uni-init", "internal/initbin/uni-init.go-version"} {
		if !slices.Contains(cf.Valid, modulePath+"@"+v+"/"+want) {
			t.Errorf("the module zip lacks %s", want)
		}
	}
	gomod, err := os.ReadFile(filepath.Join(dir, v+".mod"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.Parse(v+".mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mf.Replace) != 0 || len(mf.Exclude) != 0 {
		t.Errorf("go.mod has %d replace and %d exclude directives: go install …/cmd/uni@VERSION refuses the module", len(mf.Replace), len(mf.Exclude))
	}
}

// TestGoInstallUni installs uni the way a Go user would, `go install
// …/cmd/uni@VERSION`, from a file-based module proxy holding the committed
// HEAD as version v0.0.0-ci.g<commit>, and checks that the program says
// that version and embeds the committed guest init byte for byte.
func TestGoInstallUni(t *testing.T) {
	testtool.Slow(t, "builds uni with go install")
	root := repoRoot(t)
	commit := strings.TrimSpace(run(t, root, nil, "git", "rev-parse", "HEAD"))
	v := "v0.0.0-ci.g" + commit[:12]
	proxy := makeProxy(t, root, commit, v)

	goEnv := func(name string) string {
		return strings.TrimSpace(run(t, root, nil, "go", "env", name))
	}
	modCache := goEnv("GOMODCACHE")
	upstream := goEnv("GOPROXY")
	dropFromModCache(t, modCache, v) // a leftover of an interrupted run
	t.Cleanup(func() { dropFromModCache(t, modCache, v) })

	gobin := filepath.Join(t.TempDir(), "bin")
	run(t, t.TempDir(), []string{
		"GOPROXY=file://" + filepath.ToSlash(proxy) + "," + upstream,
		"GONOSUMDB=" + modulePath, // not in the checksum database
		"GOFLAGS=-modcacherw",     // so that the cleanup can remove it
		"GOWORK=off",
		"GOBIN=" + gobin,
	}, "go", "install", modulePath+"/cmd/uni@"+v)
	uni := filepath.Join(gobin, "uni")

	// The go command stamped the proxy's version: this is the module the
	// proxy served, not the checkout.
	if info := run(t, root, nil, "go", "version", "-m", uni); !strings.Contains(info, "\tmod\t"+modulePath+"\t"+v+"\t") {
		t.Fatalf("go version -m %s does not name %s %s:\n%s", uni, modulePath, v, info)
	}
	if got, want := strings.TrimSpace(run(t, root, nil, uni, "version")), "uni "+strings.TrimPrefix(v, "v"); got != want {
		t.Errorf("uni version says %q, want %q", got, want)
	}
	run(t, root, nil, uni, "build", "--help")

	// go:embed stores the init verbatim, so the committed file's bytes
	// must appear in the program.
	initBin := []byte(run(t, root, nil, "git", "show", commit+":internal/initbin/uni-init"))
	if len(initBin) < 1<<20 {
		t.Fatalf("git show of the committed init gave %d bytes", len(initBin))
	}
	prog, err := os.ReadFile(uni)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(prog, initBin) {
		t.Fatalf("the installed uni does not embed internal/initbin/uni-init of %s (%d bytes)", commit, len(initBin))
	}
}

// makeProxy writes a GOPROXY directory serving modulePath at version v,
// made from commit with the zip library the go command's own tooling uses.
func makeProxy(t *testing.T, root, commit, v string) string {
	t.Helper()
	// zip.CreateFromVCS wants a repository whose .git is a directory; a
	// checkout may be a worktree, so fetch the commit into a scratch one.
	scratch := t.TempDir()
	run(t, scratch, nil, "git", "init", "-q")
	run(t, scratch, nil, "git", "fetch", "-q", "--depth=1", "--no-tags", root, commit)

	proxy := t.TempDir()
	dir := filepath.Join(proxy, filepath.FromSlash(escapedPath(t)), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(dir, v+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := createFromVCS(zf, v, scratch, commit); err != nil {
		zf.Close()
		t.Fatalf("module zip of %s: %v", commit, err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	gomod := run(t, scratch, nil, "git", "show", commit+":go.mod")
	when := strings.TrimSpace(run(t, scratch, nil, "git", "show", "-s", "--format=%cI", commit))
	info, err := json.Marshal(struct{ Version, Time string }{v, when})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{v + ".mod": gomod, v + ".info": string(info), "list": v + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return proxy
}

// dropFromModCache removes version v of modulePath from the module cache:
// the extracted tree, the download cache's files and v's line in the
// download cache's version list; directories that this leaves empty go
// too (os.Remove leaves a directory that is not empty alone).
func dropFromModCache(t *testing.T, modCache, v string) {
	t.Helper()
	esc := filepath.FromSlash(escapedPath(t))
	tree := filepath.Join(modCache, esc+"@"+v)
	if err := makeWritable(tree); err != nil {
		t.Errorf("module cache: %v", err)
	}
	if err := os.RemoveAll(tree); err != nil {
		t.Errorf("module cache: %v", err)
	}
	removeEmptyDirs(modCache, filepath.Dir(tree))

	dl := filepath.Join(modCache, "cache", "download", esc, "@v")
	files, err := filepath.Glob(filepath.Join(dl, v+".*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Errorf("module cache: %v", err)
		}
	}
	list := filepath.Join(dl, "list")
	if data, err := os.ReadFile(list); err == nil {
		var keep []string
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line != "" && line != v {
				keep = append(keep, line+"\n")
			}
		}
		if len(keep) == 0 {
			err = os.Remove(list)
		} else {
			err = os.WriteFile(list, []byte(strings.Join(keep, "")), 0o644)
		}
		if err != nil {
			t.Errorf("module cache: %v", err)
		}
	}
	removeEmptyDirs(modCache, dl)
}

// removeEmptyDirs removes dir and its parents below top while they are
// empty.
func removeEmptyDirs(top, dir string) {
	for dir != top && strings.HasPrefix(dir, top+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// makeWritable gives the owner write permission on dir and what it holds
// (the go command makes module trees read-only), so RemoveAll can work.
func makeWritable(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readSums parses a sha256sum file: "HEX  NAME" per line.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s:%d: not a sha256sum line: %q", path, i+1, line)
		}
		sums[name] = sum
	}
	return sums
}

// extractZip checks that the zip holds exactly one file, name, dated when,
// and writes it executable into dir.
func extractZip(t *testing.T, path, name, dir string, when time.Time) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != name {
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		t.Fatalf("%s holds %q, want only %s", filepath.Base(path), names, name)
	}
	checkTime(t, path, zr.File[0].Modified, when)
	r, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return writeExec(t, r, filepath.Join(dir, name))
}

// extractTarGz checks that every entry of the archive is dated when and
// writes the entry name executable into dir.
func extractTarGz(t *testing.T, path, name, dir string, when time.Time) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	var prog string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		checkTime(t, path+":"+h.Name, h.ModTime, when)
		if h.Name == name {
			prog = writeExec(t, tr, filepath.Join(dir, name))
		}
	}
	if prog == "" {
		t.Fatalf("%s has no %s", filepath.Base(path), name)
	}
	return prog
}

// checkTime checks an archive entry's time against the commit's: zip
// stores local time in 2-second steps, so equal within 2 s.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("%s: dated %s, want the commit's time %s", what, got.UTC(), want.UTC())
	}
}

func writeExec(t *testing.T, r io.Reader, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkPlatform checks that the program at path is an executable for goos
// and goarch: an ELF or Mach-O file for the right machine.
func checkPlatform(t *testing.T, path, goos, goarch string) {
	t.Helper()
	switch goos {
	case "linux":
		f, err := elf.Open(path)
		if err != nil {
			t.Fatalf("%s: not ELF: %v", path, err)
		}
		defer f.Close()
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
		if f.Machine != want || f.Type != elf.ET_EXEC {
			t.Errorf("%s: ELF %v %v, want %v executable", path, f.Machine, f.Type, want)
		}
	case "darwin":
		f, err := macho.Open(path)
		if err != nil {
			t.Fatalf("%s: not Mach-O: %v", path, err)
		}
		defer f.Close()
		want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
		if f.Cpu != want || f.Type != macho.TypeExec {
			t.Errorf("%s: Mach-O %v %v, want %v executable", path, f.Cpu, f.Type, want)
		}
	default:
		t.Fatalf("no check for %s", goos)
	}
}

// createFromVCS writes the module zip of version v from commit in the git
// repository dir, leaving out what the go command leaves out.
func createFromVCS(w io.Writer, v, dir, commit string) error {
	return modzip.CreateFromVCS(w, module.Version{Path: modulePath, Version: v}, dir, commit, "")
}

// escapedPath is modulePath as proxies and the module cache spell it.
func escapedPath(t *testing.T) string {
	t.Helper()
	esc, err := module.EscapePath(modulePath)
	if err != nil {
		t.Fatal(err)
	}
	return esc
}
