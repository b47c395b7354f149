package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/uniforge/packer-plugin-unikernel/internal/testbundle"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// hostStage is a last stage FROM host that adds /app/hello.txt and runs
// the host's /bin/true.
func hostStage(t *testing.T) FinalStage {
	t.Helper()
	testtool.NeedFile(t, "/bin/true", "coreutils")
	added := rootfs.NewTree()
	if err := added.Add(rootfs.Entry{Path: "/app/hello.txt", Mode: 0o644, Data: []byte("hello\n")}); err != nil {
		t.Fatal(err)
	}
	return FinalStage{
		Root:  rootfs.Overlay{Upper: added, Lower: rootfs.HostFS{Root: "/"}},
		Added: added,
		Settings: unifile.Settings{
			Entrypoint: []string{"/bin/true"}, Env: []string{"PATH=/usr/bin:/bin"},
			WorkingDir: "/app", MemoryBytes: 128 << 20, CPUs: 1, Kernel: "test",
			ExposedPorts: []spec.Port{{Port: 8080, Protocol: "tcp"}},
		},
	}
}

func TestCutKeepsClosureAndAdded(t *testing.T) {
	p, err := Cut(context.Background(), hostStage(t))
	if err != nil {
		t.Fatal(err)
	}
	exe := p.Config.Entrypoint[0]
	if e, _, err := rootfs.Resolve(p.Root, exe); err != nil || !e.IsRegular() {
		t.Fatalf("the program %s is not in the root", exe)
	}
	for _, want := range []string{"/app/hello.txt", "/tmp", "/proc", spec.HostsPath, spec.ResolvConfPath} {
		if _, ok := p.Root.Get(want); !ok {
			t.Errorf("%s missing from the cut root", want)
		}
	}
	if _, ok := p.Root.Get("/etc/shadow"); ok {
		t.Error("the cut root holds /etc/shadow: it must hold the closure, not the host")
	}
	if !hasEnv(p.Config.Env, "HOME") {
		t.Errorf("no HOME in %q", p.Config.Env)
	}
	if p.Config.WorkingDir != "/app" || p.Config.MemoryBytes != 128<<20 || len(p.Config.ExposedPorts) != 1 || p.Kernel != "test" {
		t.Errorf("config not carried over: %+v", p.Config)
	}
}

func TestCutRefusesWhatTheGuestCannotSee(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*FinalStage)
		step   Step
		path   string
	}{
		"COPY into /tmp": {func(st *FinalStage) {
			st.Added.(*rootfs.Tree).Add(rootfs.Entry{Path: "/tmp/data", Mode: 0o644, Data: []byte("x")})
		}, StepAdded, "/tmp/data"},
		"INCLUDE under /run": {func(st *FinalStage) { st.Settings.Includes = []string{"/run/x"} }, StepInclude, "/run/x"},
		"missing INCLUDE":    {func(st *FinalStage) { st.Settings.Includes = []string{"/no/such/path"} }, StepInclude, "/no/such/path"},
		"WORKDIR in /tmp":    {func(st *FinalStage) { st.Settings.WorkingDir = "/tmp/w" }, StepWorkdir, "/tmp/w"},
		"no program":         {func(st *FinalStage) { st.Settings.Entrypoint = nil }, StepEntrypoint, ""},
		"unknown user":       {func(st *FinalStage) { st.Settings.User = "no-such-user-here" }, StepUser, ""},
	} {
		t.Run(name, func(t *testing.T) {
			st := hostStage(t)
			tc.change(&st)
			_, err := Cut(context.Background(), st)
			var se *StepError
			if !errors.As(err, &se) || se.Step != tc.step || se.Path != tc.path {
				t.Fatalf("err = %v (%+v), want a %s error about %q", err, se, tc.step, tc.path)
			}
		})
	}
}

func TestHomeDir(t *testing.T) {
	tree := rootfs.NewTree()
	tree.Add(rootfs.Entry{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")})
	for uid, want := range map[uint32]string{0: "/root", 1000: "/home/app", 4242: "/"} {
		if got := homeDir(tree, uid); got != want {
			t.Errorf("homeDir(%d) = %q, want %q", uid, got, want)
		}
	}
	if got := homeDir(rootfs.NewTree(), 0); got != "/root" {
		t.Errorf("root without /etc/passwd: %q, want /root", got)
	}
}

// TestAssembleInProcess runs the whole core on the small test bundle and
// checks the layout with real tools: twice, for the same bytes.
func TestAssembleInProcess(t *testing.T) {
	testtool.Need(t, "unsquashfs")
	b := testbundle.Bundle(t)
	ctx := context.Background()
	var outs []string
	for range 2 {
		p, err := Cut(ctx, hostStage(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckMemory(b, p); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "image")
		cfg, err := Assemble(ctx, p, b, Output{Dir: out, Disk: true, SourceDateEpoch: 1700000000})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Kernel.Release != testbundle.Release || cfg.Hostname == "" || cfg.Build.SourceDateEpoch != 1700000000 {
			t.Errorf("config: %+v", cfg)
		}
		outs = append(outs, out)
	}
	for _, f := range []string{spec.KernelFile, spec.InitrdFile, spec.RootfsFile, spec.ConfigFile, spec.DiskFile, spec.SBOMFile} {
		a, err1 := os.ReadFile(filepath.Join(outs[0], f))
		c, err2 := os.ReadFile(filepath.Join(outs[1], f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, c) {
			t.Errorf("%s differs between two assemblies of the same inputs (%v %v)", f, err1, err2)
		}
	}
	list, err := exec.Command("unsquashfs", "-lc", filepath.Join(outs[0], spec.RootfsFile)).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, list)
	}
	for _, want := range []string{"squashfs-root/app/hello.txt", "squashfs-root/etc/hosts"} {
		if !strings.Contains(string(list), want+"\n") {
			t.Errorf("rootfs.img lacks %s:\n%s", want, list)
		}
	}
	// What the guest runs (init.json in the initrd) is what config.json says.
	var cfg spec.ImageConfig
	raw, _ := os.ReadFile(filepath.Join(outs[0], spec.ConfigFile))
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	got := initJSON(t, filepath.Join(outs[0], spec.InitrdFile))
	if want := cfg.InitConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("init.json %+v\nwant %+v", got, want)
	}
}

// initJSON reads the init's config out of a zstd newc initrd with cpio.
func initJSON(t *testing.T, initrd string) spec.InitConfig {
	t.Helper()
	testtool.Need(t, "cpio")
	raw, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := dec.DecodeAll(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-id", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(plain)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	var ic spec.InitConfig
	data, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(spec.InitConfigPath, "/")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ic); err != nil {
		t.Fatal(err)
	}
	return ic
}

// TestAssembleCancelled: a cancelled assembly returns context.Canceled and
// leaves neither the output nor a temporary directory.
func TestAssembleCancelled(t *testing.T) {
	b := testbundle.Bundle(t)
	p, err := Cut(context.Background(), hostStage(t))
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Assemble(ctx, p, b, Output{Dir: filepath.Join(parent, "image"), Disk: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var left []string
	filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if p != parent {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("a cancelled assembly left %v", left)
	}
}
