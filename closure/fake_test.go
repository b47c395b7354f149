package closure

import (
	"debug/elf"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

func arm64(typ elf.Type) fakeELF {
	return fakeELF{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_AARCH64, typ: typ}
}

func amd64(typ elf.Type) fakeELF {
	return fakeELF{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_X86_64, typ: typ}
}

func lib(base fakeELF, soname string, needed ...string) []byte {
	base.soname, base.needed = soname, needed
	return base.bytes()
}

// aarch64Root is a root for an arm64 program, with x86-64 decoys that ld.so
// would skip: an aarch64 ELF must pick its own multiarch directory.
func aarch64Root(t *testing.T, app fakeELF) *rootfs.Tree {
	tree := rootfs.NewTree()
	addFile(t, tree, "/lib/ld-linux-aarch64.so.1", 0o755, lib(arm64(elf.ET_DYN), "ld-linux-aarch64.so.1"))
	addFile(t, tree, "/lib/aarch64-linux-gnu/libc.so.6", 0o755, lib(arm64(elf.ET_DYN), "libc.so.6", "ld-linux-aarch64.so.1"))
	addFile(t, tree, "/lib/aarch64-linux-gnu/libfoo.so.1.0.0", 0o644, lib(arm64(elf.ET_DYN), "libfoo.so.1", "libc.so.6"))
	addLink(t, tree, "/lib/aarch64-linux-gnu/libfoo.so.1", "libfoo.so.1.0")
	addLink(t, tree, "/lib/aarch64-linux-gnu/libfoo.so.1.0", "libfoo.so.1.0.0")
	addFile(t, tree, "/lib/x86_64-linux-gnu/libfoo.so.1", 0o644, lib(amd64(elf.ET_DYN), "libfoo.so.1"))
	addFile(t, tree, "/decoy/libfoo.so.1", 0o644, lib(amd64(elf.ET_DYN), "libfoo.so.1"))
	addFile(t, tree, "/lib64/libfoo.so.1", 0o644, lib(amd64(elf.ET_DYN), "libfoo.so.1"))
	app.interp = "/lib/ld-linux-aarch64.so.1"
	addFile(t, tree, "/app/prog", 0o755, app.bytes())
	return tree
}

func TestForeignMachineChoosesItsOwnDirs(t *testing.T) {
	app := arm64(elf.ET_DYN)
	app.needed = []string{"libfoo.so.1", "libc.so.6"}
	tree := aarch64Root(t, app)
	res, err := Resolve(t.Context(), tree, []string{"/app/prog"}, WithEnv([]string{"LD_LIBRARY_PATH=/decoy"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/app/prog", "/etc/nsswitch.conf", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libfoo.so.1", "/lib/ld-linux-aarch64.so.1"}
	got := res.Paths
	if !slices.Contains(want, "/etc/nsswitch.conf") || len(res.Generated) != 1 {
		t.Fatalf("want a generated nsswitch.conf, got %v", res.Generated)
	}
	want = slices.DeleteFunc(want, func(s string) bool { return s == "/etc/nsswitch.conf" })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths:\n got %v\nwant %v", got, want)
	}
	out, err := res.Tree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	// The soname link chain is kept, with the file it ends at.
	for p, link := range map[string]string{"/lib/aarch64-linux-gnu/libfoo.so.1": "libfoo.so.1.0", "/lib/aarch64-linux-gnu/libfoo.so.1.0": "libfoo.so.1.0.0"} {
		e, ok := out.Get(p)
		if !ok || !e.IsSymlink() || e.Link != link {
			t.Errorf("%s: want a link to %s, got %+v", p, link, e)
		}
	}
	if e, ok := out.Get("/lib/aarch64-linux-gnu/libfoo.so.1.0.0"); !ok || !e.IsRegular() {
		t.Errorf("libfoo.so.1.0.0 missing from the copy")
	}
	if _, ok := out.Get("/decoy/libfoo.so.1"); ok {
		t.Errorf("the x86-64 decoy was copied")
	}
	if e, ok := out.Get("/etc/nsswitch.conf"); !ok || !strings.Contains(string(e.Data), "hosts: files dns") {
		t.Errorf("generated nsswitch.conf missing or wrong: %+v", e)
	}
}

func TestMissingLibraryNamesWhoNeedsIt(t *testing.T) {
	tree := rootfs.NewTree()
	addFile(t, tree, "/lib/ld-linux-aarch64.so.1", 0o755, lib(arm64(elf.ET_DYN), "ld-linux-aarch64.so.1"))
	addFile(t, tree, "/usr/lib/x/libbar.so", 0o644, lib(arm64(elf.ET_DYN), "libbar.so", "libfoo.so.1"))
	app := arm64(elf.ET_EXEC)
	app.interp, app.needed, app.runpath = "/lib/ld-linux-aarch64.so.1", []string{"libbar.so"}, "/usr/lib/x"
	addFile(t, tree, "/bin/app", 0o755, app.bytes())
	_, err := Resolve(t.Context(), tree, []string{"app"})
	if err == nil {
		t.Fatal("no error for a missing library")
	}
	want := "libfoo.so.1, needed by /usr/lib/x/libbar.so, not found in [/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /lib64 /usr/lib64 /lib /usr/lib]"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\nwant it to contain %q", err, want)
	}
}

func TestSearchOrder(t *testing.T) {
	// libgreet.so.1 exists in /rp (RPATH), /ld (LD_LIBRARY_PATH), /rn
	// (RUNPATH) and /conf (ld.so.conf); each has its own soname so the pick shows.
	build := func(rpath, runpath string) *rootfs.Tree {
		tree := rootfs.NewTree()
		addFile(t, tree, "/lib/ld-linux-aarch64.so.1", 0o755, lib(arm64(elf.ET_DYN), "ld-linux-aarch64.so.1"))
		for _, d := range []string{"/rp", "/ld", "/rn", "/conf/lib"} {
			addFile(t, tree, d+"/libgreet.so.1", 0o644, lib(arm64(elf.ET_DYN), "")) //nolint
		}
		addFile(t, tree, "/etc/ld.so.conf", 0o644, []byte("# comment\ninclude ld.so.conf.d/*.conf\n"))
		addFile(t, tree, "/etc/ld.so.conf.d/a.conf", 0o644, []byte("/conf/lib\n"))
		addFile(t, tree, "/etc/ld.so.conf.d/b.txt", 0o644, []byte("/rp\n")) // not matched by the glob
		app := arm64(elf.ET_DYN)
		app.interp, app.needed, app.rpath, app.runpath = "/lib/ld-linux-aarch64.so.1", []string{"libgreet.so.1"}, rpath, runpath
		addFile(t, tree, "/app", 0o755, app.bytes())
		return tree
	}
	cases := []struct {
		name, rpath, runpath string
		env                  []string
		want                 string
	}{
		{"rpath before LD_LIBRARY_PATH", "/rp", "", []string{"LD_LIBRARY_PATH=/ld"}, "/rp/libgreet.so.1"},
		{"LD_LIBRARY_PATH before runpath", "", "/rn", []string{"LD_LIBRARY_PATH=/ld"}, "/ld/libgreet.so.1"},
		{"rpath ignored with runpath", "/rp", "/rn", nil, "/rn/libgreet.so.1"},
		{"ld.so.conf include", "", "", nil, "/conf/lib/libgreet.so.1"},
		{"origin", "$ORIGIN/rp", "", nil, "/rp/libgreet.so.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Resolve(t.Context(), build(c.rpath, c.runpath), []string{"/app"}, WithEnv(c.env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(res.Paths, c.want) {
				t.Fatalf("paths %v, want %s among them", res.Paths, c.want)
			}
		})
	}
}

func TestDynamicStringTokens(t *testing.T) {
	tree := rootfs.NewTree()
	addFile(t, tree, "/lib/ld-linux-aarch64.so.1", 0o755, lib(arm64(elf.ET_DYN), "ld-linux-aarch64.so.1"))
	tree.Add(rootfs.Entry{Path: "/usr/lib/aarch64-linux-gnu", Mode: fs.ModeDir | 0o755})
	addFile(t, tree, "/opt/lib/aarch64-linux-gnu/aarch64/libtok.so", 0o644, lib(arm64(elf.ET_DYN), "libtok.so"))
	app := arm64(elf.ET_DYN)
	app.interp, app.needed, app.runpath = "/lib/ld-linux-aarch64.so.1", []string{"libtok.so"}, "/opt/${LIB}/$PLATFORM"
	addFile(t, tree, "/app", 0o755, app.bytes())
	res, err := Resolve(t.Context(), tree, []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Paths, "/opt/lib/aarch64-linux-gnu/aarch64/libtok.so") {
		t.Fatalf("paths %v", res.Paths)
	}
}

func TestStaticNeedsNothing(t *testing.T) {
	tree := rootfs.NewTree()
	app := arm64(elf.ET_EXEC)
	app.static = true
	addFile(t, tree, "/sbin/app", 0o755, app.bytes())
	addFile(t, tree, "/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	res, err := Resolve(t.Context(), tree, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Paths, []string{"/sbin/app"}) || res.Exe != "/sbin/app" || len(res.Generated) != 0 {
		t.Fatalf("got %+v", res)
	}
}

func TestEntrypointNotOnPath(t *testing.T) {
	_, err := Resolve(t.Context(), rootfs.NewTree(), []string{"node"}, WithEnv([]string{"PATH=/usr/bin:/bin"}))
	if err == nil || !strings.Contains(err.Error(), `entrypoint "node" not found on PATH /usr/bin:/bin`) {
		t.Fatalf("error %v", err)
	}
}

func TestLibcFiles(t *testing.T) {
	app := arm64(elf.ET_DYN)
	app.needed = []string{"libc.so.6"}
	tree := aarch64Root(t, app)
	addFile(t, tree, "/etc/nsswitch.conf", 0o644, []byte("hosts: files\n"))
	addFile(t, tree, "/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	addFile(t, tree, "/usr/share/zoneinfo/Europe/Berlin", 0o644, []byte("TZif"))
	addFile(t, tree, "/usr/share/zoneinfo/Etc/UTC", 0o644, []byte("TZif"))
	addLink(t, tree, "/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
	addFile(t, tree, "/etc/ssl/certs/ca-certificates.crt", 0o644, []byte("PEM"))
	addFile(t, tree, "/usr/share/ca-certificates/a.crt", 0o644, []byte("PEM a"))
	addLink(t, tree, "/etc/ssl/certs/a.pem", "/usr/share/ca-certificates/a.crt")
	addLink(t, tree, "/etc/ssl/certs/dangling.pem", "/nowhere")
	addFile(t, tree, "/lib/aarch64-linux-gnu/libnss_dns.so.2", 0o644, lib(arm64(elf.ET_DYN), "libnss_dns.so.2", "libc.so.6"))
	addFile(t, tree, "/lib/aarch64-linux-gnu/libnss_files.so.2", 0o644, lib(arm64(elf.ET_DYN), "libnss_files.so.2", "libgone.so"))
	res, err := Resolve(t.Context(), tree, []string{"/app/prog"}, WithEnv([]string{"TZ=Europe/Berlin"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/nsswitch.conf", "/etc/hosts", "/etc/localtime", "/usr/share/zoneinfo/Europe/Berlin", "/etc/ssl/certs", "/lib/aarch64-linux-gnu/libnss_dns.so.2"} {
		if !slices.Contains(res.Paths, p) {
			t.Errorf("%s missing from %v", p, res.Paths)
		}
	}
	if slices.Contains(res.Paths, "/lib/aarch64-linux-gnu/libnss_files.so.2") || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "libgone.so") {
		t.Errorf("libnss_files with a missing library: paths %v warnings %v", res.Paths, res.Warnings)
	}
	if len(res.Generated) != 0 {
		t.Errorf("generated %v though the root has nsswitch.conf", res.Generated)
	}
	out, err := res.Tree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/share/zoneinfo/Etc/UTC", "/usr/share/ca-certificates/a.crt", "/etc/ssl/certs/dangling.pem", "/etc/ssl/certs/ca-certificates.crt"} {
		if _, ok := out.Get(p); !ok {
			t.Errorf("%s missing from the copy", p)
		}
	}
}

func TestRpathOfLoadersUnlessRunpath(t *testing.T) {
	tree := rootfs.NewTree()
	addFile(t, tree, "/lib/ld-linux-aarch64.so.1", 0o755, lib(arm64(elf.ET_DYN), "ld-linux-aarch64.so.1"))
	addFile(t, tree, "/rp/libmid.so", 0o644, lib(arm64(elf.ET_DYN), "libmid.so", "libdeep.so"))
	addFile(t, tree, "/rp/libdeep.so", 0o644, lib(arm64(elf.ET_DYN), "libdeep.so"))
	withRunpath := arm64(elf.ET_DYN)
	withRunpath.soname, withRunpath.needed, withRunpath.runpath = "libmid2.so", []string{"libdeep2.so"}, "/elsewhere"
	addFile(t, tree, "/rp/libmid2.so", 0o644, withRunpath.bytes())
	addFile(t, tree, "/rp/libdeep2.so", 0o644, lib(arm64(elf.ET_DYN), "libdeep2.so"))
	app := arm64(elf.ET_DYN)
	app.interp, app.rpath = "/lib/ld-linux-aarch64.so.1", "/rp"
	app.needed = []string{"libmid.so"}
	addFile(t, tree, "/app", 0o755, app.bytes())
	// libmid.so has no search path of its own: the executable's RPATH finds libdeep.so.
	res, err := Resolve(t.Context(), tree, []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Paths, "/rp/libdeep.so") {
		t.Fatalf("paths %v", res.Paths)
	}
	// libmid2.so has a RUNPATH: the executable's RPATH no longer applies to it.
	app.needed = []string{"libmid2.so"}
	addFile(t, tree, "/app", 0o755, app.bytes())
	_, err = Resolve(t.Context(), tree, []string{"/app"})
	if err == nil || !strings.Contains(err.Error(), "libdeep2.so, needed by /rp/libmid2.so, not found in [/elsewhere ") {
		t.Fatalf("error %v", err)
	}
}
