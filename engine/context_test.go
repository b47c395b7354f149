package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// TestCopyKeepsLinksInDirs: as in BuildKit, links inside a copied context
// directory are copied as links, their targets unchanged, wherever they
// point; only following a link (a source that is itself a link) must stay
// inside the context.
func TestCopyKeepsLinksInDirs(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ctx")
	write(t, parent, map[string]string{"outside": "x"})
	write(t, dir, map[string]string{"in/ok": "ok", "secret.key": "k", ".dockerignore": "secret.key\n"})
	for link, target := range map[string]string{
		"in/passwd":     "/etc/passwd",
		"in/rel-escape": "../../outside",
		"in/ok-link":    "ok",
		"abs-escape":    filepath.Join(parent, "outside"),
		"to-secret":     "secret.key",
		"to-ok":         "in/ok",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	_, root, err := stagesOf(t, dir, "FROM scratch\nCOPY in /in\nCOPY to-ok /app/\nENTRYPOINT [\"/x\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/in/passwd": "/etc/passwd", "/in/rel-escape": "../../outside", "/in/ok-link": "ok"} {
		e, ok := root.upper.Get(p)
		if !ok || !e.IsSymlink() || e.Link != want {
			t.Errorf("%s: %+v, want a link to %s", p, e, want)
		}
	}
	if got := content(t, root.upper, "/app/to-ok"); got != "ok" {
		t.Errorf("a source that is a link was not followed: %q", got)
	}

	c, err := openContext(dir, filepath.Join(dir, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.sources("abs-escape"); !errors.Is(err, rootfs.ErrEscape) {
		t.Errorf("following a link out of the context: %v, want rootfs.ErrEscape", err)
	}
	if _, err := c.sources("../outside"); !errors.Is(err, rootfs.ErrEscape) {
		t.Errorf("a source above the context: %v, want rootfs.ErrEscape", err)
	}
	if _, err := c.sources("to-secret"); err == nil || !strings.Contains(err.Error(), ".dockerignore") {
		t.Errorf("a link to an ignored file was followed: %v", err)
	}
	if _, err := c.sources("nothere"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing source: %v, want os.ErrNotExist", err)
	}
}

// TestContextNames: names no guest could use are refused where they enter,
// naming the file.
func TestContextNames(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("n", 300)
	c, err := openContext(dir, filepath.Join(dir, "Unifile"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.sources(long)
	if !errors.Is(err, rootfs.ErrInvalidPath) || !strings.Contains(err.Error(), "300 bytes") {
		t.Errorf("a 300-byte source name: %v", err)
	}
	if strings.Count(err.Error(), long) > 0 {
		t.Errorf("the error repeats the name the COPY line shows: %.80s", err)
	}
	// A directory deeper than rootfs.MaxDepth stops the walk at the limit.
	// Each level is made below the one before, so PATH_MAX does not matter.
	cur, err := os.OpenRoot(dir)
	for i := 0; err == nil && i <= rootfs.MaxDepth+5; i++ {
		name := "d"
		if i == 0 {
			name = "deep"
		}
		if err = cur.Mkdir(name, 0o755); err == nil {
			next, e := cur.OpenRoot(name)
			cur.Close()
			cur, err = next, e
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	cur.Close()
	_, err = c.sources("deep")
	if !errors.Is(err, rootfs.ErrTooDeep) || !strings.Contains(err.Error(), "/deep/d/d/d") {
		t.Errorf("a %d-level context directory: %.200v, want a depth error naming it", rootfs.MaxDepth+5, err)
	}
}

// TestCopyDestNames: a destination no guest could use is refused at its
// COPY line, by the parser already (and by the tree, whatever the source).
func TestCopyDestNames(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"f": "x"})
	text := "FROM scratch\nCOPY f /" + strings.Repeat("n", 300) + "\nENTRYPOINT [\"/x\"]\n"
	_, err := unifile.Parse(strings.NewReader(text), unifile.Options{Filename: "Unifile"})
	if err == nil || !strings.Contains(err.Error(), "Unifile:2") || !strings.Contains(err.Error(), "300 bytes long") {
		t.Errorf("a 300-byte destination: %v", err)
	}
}
