package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// sayHi is a static program for the roots below, which need no more.
const sayHi = "package main\n\nfunc main() { println(\"hi\") }\n"

// needBuild: these tests build real images (the kernel package comes from
// the distribution's archive) and list them with unsquashfs.
func needBuild(t *testing.T) {
	t.Helper()
	testtool.NeedDownload(t, "the kernel package")
	testtool.Need(t, "go", "unsquashfs")
}

// mkDeep makes dir/name/d/d/…/d/file, depth levels of d, each level made
// below the one before so that PATH_MAX does not stop the test's own setup.
func mkDeep(t *testing.T, dir, name string, depth int) {
	t.Helper()
	cur, err := os.OpenRoot(dir)
	for i := 0; err == nil && i <= depth; i++ {
		n := "d"
		if i == 0 {
			n = name
		}
		if err = cur.Mkdir(n, 0o755); err == nil {
			next, e := cur.OpenRoot(n)
			cur.Close()
			cur, err = next, e
		}
	}
	if err == nil {
		err = cur.WriteFile("file", []byte("bottom"), 0o644)
		cur.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// listImage returns `unsquashfs -lls` of the layout's rootfs.img.
func listImage(t *testing.T, out string) string {
	t.Helper()
	b, err := exec.Command("unsquashfs", "-lls", filepath.Join(out, "rootfs.img")).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lls: %v\n%s", err, b)
	}
	return string(b)
}

// TestDeepTreeBuilds: an 800-level directory COPYed from the context into
// a stage, then COPY --from that stage and INCLUDEd in a stage built on it,
// builds in about a second (it took minutes when each path was resolved
// from the root), and the deepest file is in rootfs.img.
func TestDeepTreeBuilds(t *testing.T) {
	needBuild(t)
	ctx := t.TempDir()
	buildStatic(t, sayHi, filepath.Join(ctx, "hello"))
	mkDeep(t, ctx, "deep", 800)
	writeFiles(t, ctx, map[string]string{"Unifile": `FROM scratch AS src
COPY hello /hello
COPY deep /ctx/deep

FROM src
COPY --from=src /ctx/deep /stage/deep
INCLUDE /ctx/deep /stage/deep
ENTRYPOINT ["/hello"]
`})
	// A first build warms the kernel cache, so the second one times the tree.
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	os.RemoveAll(out)
	start := time.Now()
	mustUni(t, ctx, "build", "-o", out, ".")
	took := time.Since(start)
	t.Logf("build with an 800-level tree: %v", took)
	if took > 10*time.Second {
		t.Errorf("the build took %v", took)
	}
	list := listImage(t, out)
	tail := strings.Repeat("/d", 800) + "/file"
	for _, p := range []string{"/ctx/deep" + tail, "/stage/deep" + tail} {
		if !strings.Contains(list, "squashfs-root"+p) {
			t.Errorf("rootfs.img lacks %s…/d/file", p[:20])
		}
	}
}

// TestTooDeepTreeRefused: a 2000-level directory is refused at its COPY
// line with a depth error naming the path; no layout is written.
func TestTooDeepTreeRefused(t *testing.T) {
	needBuild(t)
	ctx := t.TempDir()
	buildStatic(t, sayHi, filepath.Join(ctx, "hello"))
	mkDeep(t, ctx, "deep", 2000)
	writeFiles(t, ctx, map[string]string{"Unifile": "FROM scratch\nCOPY hello /hello\nCOPY deep /deep\nENTRYPOINT [\"/hello\"]\n"})
	out := filepath.Join(t.TempDir(), "image")
	start := time.Now()
	msg, status := uni(t, ctx, "build", "-o", out, ".")
	if status == 0 {
		t.Fatalf("a 2000-level tree was accepted:\n%.500s", msg)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("refusing took %v", time.Since(start))
	}
	for _, want := range []string{"Unifile:3", "deep/d/d/d", "more than 1024 directory levels deep"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%.600s", want, msg)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused build wrote its output directory")
	}
}

// TestBadNamesRefused: names no guest could use are refused at the line
// that brings them in, whatever the source, and nothing is written.
// (Linux cannot even create a 300-byte file name in the context, so the
// long names come from the Unifile's COPY.)
func TestBadNamesRefused(t *testing.T) {
	needBuild(t)
	long := strings.Repeat("n", 300)
	cases := map[string]struct {
		unifile string
		want    []string
	}{
		"300-byte destination": {"FROM scratch\nCOPY hello /hello\nCOPY hello /app/" + long + "\nENTRYPOINT [\"/hello\"]\n", []string{"Unifile:3", "300 bytes long"}},
		"300-byte source":      {"FROM scratch\nCOPY hello /hello\nCOPY " + long + " /app/\nENTRYPOINT [\"/hello\"]\n", []string{"Unifile:3", "300 bytes long"}},
		"NUL in a destination": {"FROM scratch\nCOPY hello /hello\nCOPY hello /a\x00b\nENTRYPOINT [\"/hello\"]\n", []string{"Unifile:3"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := t.TempDir()
			buildStatic(t, sayHi, filepath.Join(ctx, "hello"))
			writeFiles(t, ctx, map[string]string{"Unifile": c.unifile})
			out := filepath.Join(t.TempDir(), "image")
			msg, status := uni(t, ctx, "build", "-o", out, ".")
			if status == 0 {
				t.Fatalf("accepted:\n%s", msg)
			}
			for _, want := range c.want {
				if !strings.Contains(msg, want) {
					t.Errorf("the error lacks %q:\n%s", want, msg)
				}
			}
			if strings.ContainsRune(msg, 0) {
				t.Error("the error echoes a raw NUL byte")
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a refused build wrote its output directory")
			}
		})
	}
}

// TestSymlinkInContextDirIsALink: a context directory holding a link to
// /etc/passwd and one climbing out of the context is copied as Docker
// copies it: the links, their target text unchanged, never the host's files.
func TestSymlinkInContextDirIsALink(t *testing.T) {
	needBuild(t)
	ctx := t.TempDir()
	buildStatic(t, sayHi, filepath.Join(ctx, "hello"))
	if err := os.MkdirAll(filepath.Join(ctx, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"passwd": "/etc/passwd", "shared": "../../shared/app.ini"} {
		if err := os.Symlink(target, filepath.Join(ctx, "conf", link)); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, ctx, map[string]string{
		"conf/app.ini": "x=1\n",
		"Unifile":      "FROM scratch\nCOPY hello /hello\nCOPY conf /conf\nENTRYPOINT [\"/hello\"]\n",
	})
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	lines := map[string]string{}
	for _, line := range strings.Split(listImage(t, out), "\n") {
		if i := strings.Index(line, "squashfs-root/"); i >= 0 {
			name, _, _ := strings.Cut(line[i+len("squashfs-root"):], " -> ")
			lines[name] = line
		}
	}
	for p, target := range map[string]string{"/conf/passwd": "/etc/passwd", "/conf/shared": "../../shared/app.ini"} {
		if l := lines[p]; !strings.HasPrefix(l, "l") || !strings.HasSuffix(l, p+" -> "+target) {
			t.Errorf("rootfs.img holds %q, want the link %s -> %s", l, p, target)
		}
	}
	for _, p := range []string{"/etc/passwd", "/shared/app.ini"} {
		if l, ok := lines[p]; ok {
			t.Errorf("a file the link points at was copied: %s", l)
		}
	}
	if !strings.HasPrefix(lines["/conf/app.ini"], "-") {
		t.Errorf("the directory's own file is missing: %v", lines)
	}
}
