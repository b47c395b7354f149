package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/layout/layouttest"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/sbom"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// newLayout writes a valid layout into a fresh directory named unlike a
// layout, proving that only the files count.
func newLayout(t *testing.T, cfg spec.ImageConfig, files layouttest.Files) (string, spec.ImageConfig) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "not-named-like-an-image")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := layouttest.Write(dir, cfg, files)
	if err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

func writeConfig(t *testing.T, dir string, cfg spec.ImageConfig) {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, spec.ConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAndVerifyAGoodLayout(t *testing.T) {
	dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{})
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Config(), cfg) || l.Dir() != dir || l.HasDisk() || l.Verified() {
		t.Fatalf("opened %+v", l)
	}
	if err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !l.Verified() {
		t.Fatal("Verify passed but Verified is false")
	}
	c := l.Config()
	c.Entrypoint[0] = "/changed"
	if l.Config().Entrypoint[0] != "/app" {
		t.Fatal("Config shares its slices with the caller")
	}
}

func TestOpenRecognisesALayoutByItsFiles(t *testing.T) {
	dir := t.TempDir()
	data, _ := json.Marshal(layouttest.Config())
	os.WriteFile(filepath.Join(dir, spec.ConfigFile), data, 0o644)
	_, err := Open(dir)
	if !errors.Is(err, ErrNotLayout) || !strings.Contains(err.Error(), "not an image layout") ||
		!strings.Contains(err.Error(), "kernel, initrd, rootfs.img") {
		t.Fatalf("a directory with only config.json: %v", err)
	}

	good, _ := newLayout(t, layouttest.Config(), layouttest.Files{})
	os.Remove(filepath.Join(good, spec.InitrdFile))
	if _, err := Open(good); !errors.Is(err, ErrNotLayout) || !strings.Contains(err.Error(), "lacks initrd") {
		t.Fatalf("without initrd: %v", err)
	}
	os.Symlink("/etc/hostname", filepath.Join(good, spec.InitrdFile))
	if _, err := Open(good); !errors.Is(err, ErrNotLayout) || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("initrd a symlink to a host file: %v", err)
	}

	good, _ = newLayout(t, layouttest.Config(), layouttest.Files{})
	os.Mkdir(filepath.Join(good, spec.DiskFile), 0o755)
	if _, err := Open(good); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("disk.img a directory: %v", err)
	}
	if _, err := Open(filepath.Join(good, spec.KernelFile)); !errors.Is(err, ErrNotLayout) {
		t.Fatalf("a file: %v", err)
	}
}

func TestParseConfigNamesTheBadField(t *testing.T) {
	base, err := json.Marshal(func() spec.ImageConfig {
		c := layouttest.Config()
		c.Rootfs = spec.RootfsRef{Type: "squashfs", Size: 1, Digest: "sha256:" + strings.Repeat("a", 64), SuperblockDigest: "sha256:" + strings.Repeat("b", 64)}
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(base); err != nil {
		t.Fatalf("the base config: %v", err)
	}
	// Each case edits the base config as a generic JSON object.
	cases := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"hostfwd in protocol", func(m map[string]any) {
			m["exposedPorts"] = []any{map[string]any{"port": 8080, "protocol": "tcp,hostfwd=tcp:0.0.0.0:5555-:1"}}
		}, `config.json: exposedPorts[0].protocol: "tcp,hostfwd=tcp:0.0.0.0:5555-:1" is not tcp or udp`},
		{"guestfwd cmd", func(m map[string]any) {
			m["exposedPorts"] = []any{map[string]any{"port": 1, "protocol": "tcp,guestfwd=tcp:10.0.2.100:1-cmd:touch /tmp/x"}}
		}, "exposedPorts[0].protocol"},
		{"empty protocol", func(m map[string]any) { m["exposedPorts"] = []any{map[string]any{"port": 1, "protocol": ""}} }, "exposedPorts[0].protocol"},
		{"port 0", func(m map[string]any) { m["exposedPorts"] = []any{map[string]any{"port": 0, "protocol": "tcp"}} }, "exposedPorts[0].port"},
		{"port too big", func(m map[string]any) { m["exposedPorts"] = []any{map[string]any{"port": 65536, "protocol": "tcp"}} }, "port"},
		{"port negative", func(m map[string]any) { m["exposedPorts"] = []any{map[string]any{"port": -1, "protocol": "tcp"}} }, "port"},
		{"port twice", func(m map[string]any) {
			m["exposedPorts"] = []any{map[string]any{"port": 1, "protocol": "udp"}, map[string]any{"port": 1, "protocol": "udp"}}
		}, "exposedPorts[1]: 1/udp is listed twice"},
		{"empty entrypoint", func(m map[string]any) { m["entrypoint"] = []any{} }, "entrypoint: is empty"},
		{"null entrypoint", func(m map[string]any) { m["entrypoint"] = nil }, "entrypoint: is empty"},
		{"relative entrypoint", func(m map[string]any) { m["entrypoint"] = []any{"app"} }, "entrypoint[0]"},
		{"unclean entrypoint", func(m map[string]any) { m["entrypoint"] = []any{"/a/../b"} }, "entrypoint[0]"},
		{"NUL in an argument", func(m map[string]any) { m["entrypoint"] = []any{"/app", "a\x00b"} }, "entrypoint[1]"},
		{"escape in an argument", func(m map[string]any) { m["entrypoint"] = []any{"/app", "\x1b[31m"} }, "entrypoint[1]"},
		{"env without =", func(m map[string]any) { m["env"] = []any{"PATH"} }, "env[0]"},
		{"env empty key", func(m map[string]any) { m["env"] = []any{"=x"} }, "env[0]"},
		{"env key with space", func(m map[string]any) { m["env"] = []any{"A B=x"} }, "env[0]"},
		{"env newline", func(m map[string]any) { m["env"] = []any{"A=x\ny"} }, "env[0]"},
		{"relative workdir", func(m map[string]any) { m["workingDir"] = "srv" }, "workingDir"},
		{"memory small", func(m map[string]any) { m["memoryBytes"] = 1 << 20 }, "memoryBytes"},
		{"memory huge", func(m map[string]any) { m["memoryBytes"] = 1e30 }, "memoryBytes"},
		{"memory odd", func(m map[string]any) { m["memoryBytes"] = 128<<20 + 1 }, "memoryBytes"},
		{"cpus 0", func(m map[string]any) { m["cpus"] = 0 }, "cpus"},
		{"cpus 65", func(m map[string]any) { m["cpus"] = 65 }, "cpus"},
		{"cpus huge", func(m map[string]any) { m["cpus"] = 1e20 }, "cpus"},
		{"hostname leading hyphen", func(m map[string]any) { m["hostname"] = "-x" }, "hostname"},
		{"hostname underscore", func(m map[string]any) { m["hostname"] = "a_b" }, "hostname"},
		{"hostname long", func(m map[string]any) { m["hostname"] = strings.Repeat("a", 65) }, "hostname"},
		{"hostname with options", func(m map[string]any) { m["hostname"] = "a,b" }, "hostname"},
		{"too many labels", func(m map[string]any) {
			l := map[string]any{}
			for i := 0; i < spec.MaxLabels+1; i++ {
				l[strings.Repeat("k", i+1)] = "v"
			}
			m["labels"] = l
		}, "labels"},
		{"label control", func(m map[string]any) { m["labels"] = map[string]any{"a": "\x07"} }, `labels["a"]`},
		{"digest upper", func(m map[string]any) {
			m["kernel"].(map[string]any)["digest"] = "sha256:" + strings.Repeat("A", 64)
		}, "kernel.digest"},
		{"digest a ref", func(m map[string]any) { m["kernel"].(map[string]any)["digest"] = "registry.example/evil:1" }, "kernel.digest"},
		{"rootfs ext4", func(m map[string]any) { m["rootfs"].(map[string]any)["type"] = "ext4" }, "rootfs.type"},
		{"rootfs size 0", func(m map[string]any) { m["rootfs"].(map[string]any)["size"] = 0 }, "rootfs.size"},
		{"boot pxe", func(m map[string]any) { m["bootModes"] = []any{"pxe"} }, "bootModes[0]"},
		{"no boot modes", func(m map[string]any) { m["bootModes"] = []any{} }, "bootModes"},
		{"cmdline newline", func(m map[string]any) { m["cmdline"] = "quiet\ninit=/bin/sh" }, "cmdline"},
		{"cmdline long", func(m map[string]any) { m["cmdline"] = strings.Repeat("a", 2049) }, "cmdline"},
		{"cmdline utf8", func(m map[string]any) { m["cmdline"] = "é" }, "cmdline"},
		{"schema 2", func(m map[string]any) { m["schemaVersion"] = 2 }, "schemaVersion"},
		{"unknown field", func(m map[string]any) { m["netdev"] = "user,smb=/" }, `unknown field "netdev"`},
		{"unknown nested field", func(m map[string]any) {
			m["exposedPorts"] = []any{map[string]any{"port": 1, "protocol": "tcp", "hostIP": "0.0.0.0"}}
		}, `unknown field "hostIP"`},
		{"uid -1", func(m map[string]any) { m["user"] = map[string]any{"uid": 4294967295, "gid": 0} }, "user"},
		{"disk digest bad", func(m map[string]any) { m["disk"] = map[string]any{"digest": "x", "size": 1} }, "disk.digest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(base, &m)
			c.edit(m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseConfig(data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "config.json: ") {
				t.Fatalf("error %q does not name config.json", err)
			}
			if strings.ContainsAny(err.Error(), "\x00\x07\x1b\n") {
				t.Fatalf("error %q echoes control characters", err)
			}
		})
	}

	raw := map[string]string{
		"repeated field":       `{"schemaVersion":1,"entrypoint":["/a"],` + string(base[1:]),
		"a field in two cases": strings.Replace(string(base), `"entrypoint"`, `"Entrypoint":["/bin/sh"],"entrypoint"`, 1),
		"data after":           string(base) + `{"entrypoint":["/bin/sh"]}`,
		"too big":              string(base) + strings.Repeat(" ", MaxConfigBytes),
		"not an object":        `["/bin/sh"]`,
	}
	for name, data := range raw {
		if _, err := ParseConfig([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVerifyRefusesTamperedLayouts(t *testing.T) {
	ctx := context.Background()
	cases := map[string]struct {
		tamper func(t *testing.T, dir string, cfg spec.ImageConfig)
		want   string
	}{
		"a byte of rootfs.img flipped": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			p := filepath.Join(dir, spec.RootfsFile)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 1
			os.WriteFile(p, data, 0o644)
		}, "rootfs.img does not match config.json: sha256 is"},
		"a superblock byte flipped": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			p := filepath.Join(dir, spec.RootfsFile)
			data, _ := os.ReadFile(p)
			data[10] ^= 1
			os.WriteFile(p, data, 0o644)
		}, "rootfs.img does not match config.json"},
		"rootfs.img grown": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			f, _ := os.OpenFile(filepath.Join(dir, spec.RootfsFile), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("x"))
			f.Close()
		}, "rootfs.size says"},
		"the entrypoint changed in config.json": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.Entrypoint = []string{"/bin/sh", "-c", "evil"}
			writeConfig(t, dir, cfg)
		}, `/uni/init.json args is ["/app","--flag"], config.json entrypoint says ["/bin/sh","-c","evil"]`},
		"env changed": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.Env = append(cfg.Env, "LD_PRELOAD=/x.so")
			writeConfig(t, dir, cfg)
		}, "env"},
		"user changed": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.User = &spec.User{UID: 1000, GID: 1000}
			writeConfig(t, dir, cfg)
		}, "uid:gid"},
		"workdir changed": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.WorkingDir = "/"
			writeConfig(t, dir, cfg)
		}, "workingDir"},
		"hostname changed": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.Hostname = "other"
			writeConfig(t, dir, cfg)
		}, "hostname"},
		"the kernel is not a bzImage": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			os.WriteFile(filepath.Join(dir, spec.KernelFile), []byte("multiboot?"), 0o644)
		}, "not a Linux bzImage"},
		"a second archive appended to the initrd": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			f, _ := os.OpenFile(filepath.Join(dir, spec.InitrdFile), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("070701"))
			f.Close()
		}, "initrd"},
		"initrd digest recorded and wrong": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.Initrd = &spec.FileRef{Digest: "sha256:" + strings.Repeat("0", 64), Size: 1}
			writeConfig(t, dir, cfg)
		}, "initrd.size says 1"},
		"disk recorded and different": {func(t *testing.T, dir string, cfg spec.ImageConfig) {
			cfg.Disk = &spec.FileRef{Digest: "sha256:" + strings.Repeat("0", 64), Size: 1}
			writeConfig(t, dir, cfg)
			if err := os.WriteFile(filepath.Join(dir, spec.DiskFile), []byte("not the disk"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "disk.img does not match config.json"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{})
			c.tamper(t, dir, cfg)
			l, err := Open(dir)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			err = l.Verify(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify: %v, want an error containing %q", err, c.want)
			}
			if l.Verified() {
				t.Fatal("Verified after a failed Verify")
			}
		})
	}

	// An initrd whose init config configures a network config.json does not record.
	dir, _ := newLayout(t, layouttest.Config(), layouttest.Files{EditInit: func(ic *spec.InitConfig) {
		ic.Network.Static = &spec.Static{Address: "10.0.2.15/24"}
	}})
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "network") {
		t.Fatalf("network in the initrd only: %v", err)
	}
}

func TestVerifyChecksRecordedDigestsAndStopsWhenCancelled(t *testing.T) {
	dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{})
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := l.Files(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]File{}
	for _, f := range files {
		byName[f.Name] = f
	}
	cfg.KernelFile = &spec.FileRef{Digest: byName[spec.KernelFile].Digest, Size: byName[spec.KernelFile].Size}
	cfg.Initrd = &spec.FileRef{Digest: byName[spec.InitrdFile].Digest, Size: byName[spec.InitrdFile].Size}
	writeConfig(t, dir, cfg)
	if l, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(context.Background()); err != nil {
		t.Fatalf("correct recorded digests: %v", err)
	}
	cfg.KernelFile.Digest = "sha256:" + strings.Repeat("f", 64)
	writeConfig(t, dir, cfg)
	l, _ = Open(dir)
	if err := l.Verify(context.Background()); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "kernelFile.digest") {
		t.Fatalf("wrong kernel digest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Verify(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// sha256sum is the oracle for Files' digests and sizes.
func TestFilesMatchSha256sum(t *testing.T) {
	testtool.Need(t, "sha256sum")
	dir, _ := newLayout(t, layouttest.Config(), layouttest.Files{})
	os.WriteFile(filepath.Join(dir, spec.DiskFile), []byte("disk"), 0o644)
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := l.Files(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		out, err := exec.Command("sha256sum", f.Path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := "sha256:" + strings.Fields(string(out))[0]; f.Digest != want {
			t.Errorf("%s: %s, sha256sum says %s", f.Name, f.Digest, want)
		}
		if fi, _ := os.Stat(f.Path); fi.Size() != f.Size {
			t.Errorf("%s: size %d, stat says %d", f.Name, f.Size, fi.Size())
		}
	}
	if strings.Join(names, " ") != "config.json kernel initrd rootfs.img disk.img" {
		t.Fatalf("files %q", names)
	}
}

func FuzzParseConfig(f *testing.F) {
	base, _ := json.Marshal(layouttest.Config())
	f.Add(base)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		// What was accepted means the same after a round trip.
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg2, err := ParseConfig(again)
		if err != nil || !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, cfg, cfg2)
		}
		if bytes.Contains(again, []byte("\\u0000")) {
			t.Fatalf("NUL accepted: %s", again)
		}
	})
}

// sbom.spdx.json is optional; when present, Verify checks that it
// describes this rootfs.img (its namespace and described package name
// rootfs.digest), and Files lists it last.
func TestSBOMIsVerifiedAndListed(t *testing.T) {
	ctx := context.Background()
	dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{})
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.VerifySBOM(ctx); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "rebuild") || !strings.Contains(err.Error(), "uni sbom REF") {
		t.Fatalf("no SBOM: %v", err)
	}
	// The document of this rootfs.img, as the assembler writes it.
	p := filepath.Join(dir, spec.SBOMFile)
	tree := rootfs.NewTree()
	if err := tree.Add(rootfs.Entry{Path: "/app", Mode: 0o755, Data: []byte("app"), Origin: rootfs.Origin{Kind: rootfs.OriginStageAdded}}); err != nil {
		t.Fatal(err)
	}
	in := sbom.Input{Entrypoint: cfg.Entrypoint, Root: tree, Rootfs: cfg.Rootfs, Kernel: cfg.Kernel}
	if err := sbom.WriteFile(ctx, p, in); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("the SBOM of this rootfs.img: %v", err)
	}
	if err := l.VerifySBOM(ctx); err != nil {
		t.Fatalf("VerifySBOM of this rootfs.img's SBOM: %v", err)
	}
	ref, err := HashFile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	files, err := l.Files(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last := files[len(files)-1]; last.Name != spec.SBOMFile || last.Digest != ref.Digest {
		t.Errorf("Files: last is %+v", last)
	}

	// The document of another rootfs.img (a stale one, or another image's).
	other := in
	other.Rootfs.Digest = "sha256:" + strings.Repeat("e", 64)
	if err := sbom.WriteFile(ctx, p, other); err != nil {
		t.Fatal(err)
	}
	for _, verify := range []func(context.Context) error{func(ctx context.Context) error { return l.Verify(ctx) }, l.VerifySBOM} {
		if err := verify(ctx); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "describes rootfs.img sha256:eeee") || !strings.Contains(err.Error(), cfg.Rootfs.Digest) {
			t.Errorf("the SBOM of another rootfs.img: %v", err)
		}
	}
	// Not an SBOM of ours at all.
	if err := os.WriteFile(p, []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx); !errors.Is(err, sbom.ErrNoSubject) || !strings.Contains(err.Error(), spec.SBOMFile) {
		t.Errorf("an SBOM that names no rootfs.img: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.VerifySBOM(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	os.Remove(p)
	// An SBOM travels as a referrer: a layout without it is whole.
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("a layout without its SBOM (as oras pull gives it): %v", err)
	}
	os.Symlink("/etc/hostname", p)
	if _, err := Open(dir); !errors.Is(err, ErrNotLayout) || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("sbom.spdx.json a symlink to a host file: %v", err)
	}
}

// config.json of a layout built (or an image pushed) before the SBOM
// stopped being one of its files records sbom.spdx.json's digest. Such a
// layout still opens and verifies, the field ignored; a malformed one is
// still refused by name, and any other unknown field too.
func TestRetiredSBOMField(t *testing.T) {
	ctx := context.Background()
	dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{SBOM: true})
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := HashFile(ctx, filepath.Join(dir, spec.SBOMFile))
	if err != nil {
		t.Fatal(err)
	}
	withField := func(v string) []byte {
		return bytes.Replace(data, []byte(`"build":`), []byte(`"sbom":`+v+`,"build":`), 1)
	}
	old := withField(fmt.Sprintf(`{"digest":%q,"size":%d}`, ref.Digest, ref.Size))
	if err := os.WriteFile(filepath.Join(dir, spec.ConfigFile), old, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatalf("a layout with the retired sbom field: %v", err)
	}
	if !reflect.DeepEqual(l.Config(), cfg) {
		t.Errorf("the retired field changed the config: %+v", l.Config())
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("verify a layout with the retired sbom field: %v", err)
	}
	for v, want := range map[string]string{
		`{"digest":"md5:00","size":1}`:                          "sbom.digest",
		`{"digest":"` + ref.Digest + `","size":0}`:              "sbom.size",
		`{"digest":"` + ref.Digest + `","size":1,"extra":true}`: "unknown field",
		`"sbom.spdx.json"`:                                      "cannot unmarshal",
	} {
		if _, err := ParseConfig(withField(v)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("sbom %s: %v, want %q", v, err, want)
		}
	}
	other := bytes.Replace(data, []byte(`"build":`), []byte(`"attestation":{},"build":`), 1)
	if _, err := ParseConfig(other); err == nil || !strings.Contains(err.Error(), `unknown field "attestation"`) {
		t.Errorf("an unknown field: %v", err)
	}
}

// TestVerifyWithCheckedFiles: digests a caller checked while writing are
// compared with config.json instead of being computed again; one that
// differs from config.json is still a mismatch.
func TestVerifyWithCheckedFiles(t *testing.T) {
	dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{})
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]spec.FileRef{spec.RootfsFile: {Digest: cfg.Rootfs.Digest, Size: cfg.Rootfs.Size}}
	if err := l.Verify(context.Background(), WithCheckedFiles(good)); err != nil {
		t.Fatalf("checked digests that match config.json: %v", err)
	}
	bad := map[string]spec.FileRef{spec.RootfsFile: {Digest: "sha256:" + strings.Repeat("0", 64), Size: cfg.Rootfs.Size}}
	if err := l.Verify(context.Background(), WithCheckedFiles(bad)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a checked digest that differs from config.json: %v, want ErrMismatch", err)
	}
	if cfg.Initrd != nil {
		wrongSize := map[string]spec.FileRef{spec.InitrdFile: {Digest: cfg.Initrd.Digest, Size: cfg.Initrd.Size + 1}}
		if err := l.Verify(context.Background(), WithCheckedFiles(wrongSize)); !errors.Is(err, ErrMismatch) {
			t.Fatalf("a checked size that is not the file's: %v, want ErrMismatch", err)
		}
	}
}

// TestCheckInitrdEarly: CheckInitrd, run before the rest of a layout is
// there, is what Verify takes for the initrd with WithCheckedInitrd; a
// check made against another config.json, or of an initrd that changed
// since, does not stand: Verify reads the initrd again and finds it.
func TestCheckInitrdEarly(t *testing.T) {
	ctx := context.Background()
	dir, cfg := newLayout(t, layouttest.Config(), layouttest.Files{})
	c, err := CheckInitrd(ctx, filepath.Join(dir, spec.InitrdFile), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, spec.InitrdFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.File.Size != fi.Size() || !strings.HasPrefix(c.File.Digest, "sha256:") {
		t.Fatalf("the check says %+v of a %d-byte initrd", c.File, fi.Size())
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx, WithCheckedInitrd(c)); err != nil {
		t.Fatalf("Verify with the early check: %v", err)
	}

	// A config.json whose init config differs from the initrd's: the early
	// check refuses it, and a check made against another config.json
	// does not make Verify accept it.
	other := cfg
	other.Env = append([]string{"EXTRA=1"}, cfg.Env...)
	if _, err := CheckInitrd(ctx, filepath.Join(dir, spec.InitrdFile), &other); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "env") {
		t.Fatalf("CheckInitrd against another env: %v, want ErrMismatch naming env", err)
	}
	writeConfig(t, dir, other)
	l, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx, WithCheckedInitrd(c)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify of a config.json the check was not made against: %v, want ErrMismatch", err)
	}

	// An initrd that changed size since it was checked.
	writeConfig(t, dir, cfg)
	f, err := os.OpenFile(filepath.Join(dir, spec.InitrdFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	l, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx, WithCheckedInitrd(c)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify of an initrd grown since its check: %v, want ErrMismatch", err)
	}
	if _, err := CheckInitrd(ctx, filepath.Join(dir, spec.InitrdFile), &cfg); err == nil {
		t.Fatal("CheckInitrd of an initrd with a byte after its compressed stream passed")
	}
}

// TestKernelArch: kernel.arch names the image's architecture when it is not
// amd64; an amd64 image's config.json has no such key (its bytes stay
// those of earlier builds), and an unknown architecture is refused.
func TestKernelArch(t *testing.T) {
	cfg := layouttest.Config()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(`"arch"`)) || cfg.Arch() != "amd64" {
		t.Fatalf("an amd64 config: arch %q, JSON %s", cfg.Arch(), data)
	}
	cfg.Kernel.Arch = "arm64"
	dir, cfg := newLayout(t, cfg, layouttest.Files{})
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Config(); got.Arch() != "arm64" {
		t.Fatalf("arch read back: %q", got.Arch())
	}
	cfg.Kernel.Arch = "sparc"
	writeConfig(t, dir, cfg)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "kernel.arch") {
		t.Fatalf("kernel.arch sparc: %v, want an error naming kernel.arch", err)
	}
}
