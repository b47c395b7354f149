package engine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// COPY gives context files their context-relative path, inline files the
// Unifile line, and COPY --from a stage keeps the stage file's origin.
func TestCopyOrigins(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"src/a.txt": "a", "b.txt": "b"})
	_, root, err := stagesOf(t, dir, `FROM scratch AS build
COPY src /out/
FROM scratch
COPY b.txt /b.txt
COPY --from=build /out/a.txt /copied/a.txt
COPY <<EOT /etc/motd
hello
EOT
ENTRYPOINT ["/b.txt"]
`)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]rootfs.Origin{
		"/b.txt":        {Kind: rootfs.OriginContext, Path: "b.txt"},
		"/copied/a.txt": {Kind: rootfs.OriginContext, Path: "src/a.txt"},
		"/etc/motd":     {Kind: rootfs.OriginUnifile, Path: "Unifile", Line: 6},
	} {
		e, ok := root.upper.Get(p)
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if e.Origin != want {
			t.Errorf("%s: origin %+v, want %+v", p, e.Origin, want)
		}
	}
}

// Cut keeps origins through the closure copy: the program and its
// libraries name their host paths, what the stage added keeps its origin,
// and the files uni writes say so.
func TestCutKeepsOrigins(t *testing.T) {
	st := hostStage(t)
	added := st.Added.(*rootfs.Tree)
	ctxOrigin := rootfs.Origin{Kind: rootfs.OriginContext, Path: "app/hello.txt"}
	if err := added.Add(rootfs.Entry{Path: "/app/hello.txt", Mode: 0o644, Data: []byte("hello\n"), Origin: ctxOrigin}); err != nil {
		t.Fatal(err)
	}
	p, err := Cut(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	exe, _, err := rootfs.Resolve(p.Root, p.Config.Entrypoint[0])
	if err != nil {
		t.Fatal(err)
	}
	if exe.Origin.Kind != rootfs.OriginHost || exe.Origin.Path != exe.HostPath || exe.HostPath == "" {
		t.Errorf("%s: origin %+v, host path %s", exe.Path, exe.Origin, exe.HostPath)
	}
	var libc *rootfs.Entry
	p.Root.Walk(func(e *rootfs.Entry) error {
		if e.IsRegular() && strings.HasPrefix(filepath.Base(e.Path), "libc.so") {
			libc = e
		}
		return nil
	})
	if libc == nil {
		t.Fatal("no libc in the closure of /bin/true")
	}
	if libc.Origin.Kind != rootfs.OriginHost || libc.Origin.Path != libc.HostPath {
		t.Errorf("%s: origin %+v, host path %s", libc.Path, libc.Origin, libc.HostPath)
	}
	if e, _ := p.Root.Get("/app/hello.txt"); e.Origin != ctxOrigin {
		t.Errorf("/app/hello.txt: origin %+v", e.Origin)
	}
	if e, ok := p.Root.Get("/tmp"); !ok || e.Origin != rootfs.Generated {
		t.Errorf("/tmp: %+v", e)
	}
	for _, f := range []string{spec.HostsPath, spec.ResolvConfPath} {
		e, _, err := rootfs.Resolve(p.Root, f)
		if err != nil {
			t.Fatal(err)
		}
		// Taken from the host by the closure, or written by uni.
		want := rootfs.Generated
		if e.HostPath != "" {
			want = rootfs.Origin{Kind: rootfs.OriginHost, Path: e.HostPath}
		}
		if e.Origin != want {
			t.Errorf("%s: origin %+v, want %+v", f, e.Origin, want)
		}
	}
}
