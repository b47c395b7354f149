package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrintSteps: a step run once and reported again cached counts as run;
// a step done in no time and then reported cached is CACHED; a step never
// completed and steps under 10 ms are left out; the span runs from the
// first start to the last end.
func TestPrintSteps(t *testing.T) {
	stream := `{"vertexes":[{"digest":"sha256:a","name":"COPY hi.js /app/","started":"2026-01-01T00:00:00Z"}]}
{"vertexes":[{"digest":"sha256:a","name":"COPY hi.js /app/","started":"2026-01-01T00:00:00Z","completed":"2026-01-01T00:00:00.25Z"}]}
{"vertexes":[{"digest":"sha256:b","name":"FROM node | base","started":"2026-01-01T00:00:00.1Z","completed":"2026-01-01T00:00:00.101Z"}]}
{"vertexes":[{"digest":"sha256:b","name":"FROM node | base","cached":true,"completed":"2026-01-01T00:00:00.1Z"}]}
{"vertexes":[{"digest":"sha256:d","name":"unikernel settings","cached":true}]}
{"vertexes":[{"digest":"sha256:c","name":"tiny","started":"2026-01-01T00:00:00.3Z","completed":"2026-01-01T00:00:00.305Z"}]}
{"vertexes":[{"digest":"sha256:a","name":"COPY hi.js /app/","cached":true,"started":"2026-01-01T00:00:01Z","completed":"2026-01-01T00:00:01.5Z"}]}
`
	var out bytes.Buffer
	if err := printSteps(strings.NewReader(stream), &out); err != nil {
		t.Fatal(err)
	}
	want := `| COPY hi.js /app/ | 0.25 s |
| FROM node \| base | CACHED |
| from the first step's start to the last step's end | 1.50 s |
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	if err := printSteps(strings.NewReader(""), &out); err == nil {
		t.Fatal("an empty stream gave no error")
	}
}

// TestTreeAdd: a library reached through lib -> usr/lib and a versioned
// link lands at its real path, with both links and every directory.
func TestTreeAdd(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/libz.so.1.3"), []byte("elf"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"lib": "usr/lib", "usr/lib/libz.so.1": "libz.so.1.3"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	tr := tree{}
	if err := tr.add(filepath.Join(root, "lib/libz.so.1")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{
		root:                          fs.ModeDir,
		root + "/lib":                 fs.ModeSymlink,
		root + "/usr/lib":             fs.ModeDir,
		root + "/usr/lib/libz.so.1":   fs.ModeSymlink,
		root + "/usr/lib/libz.so.1.3": 0,
	} {
		if got := tr[p].mode.Type(); got != want || tr[p] == (entry{}) {
			t.Errorf("%s: type %v, want %v (entry %+v)", p, got, want, tr[p])
		}
	}
	if tr[root+"/lib"].link != "usr/lib" {
		t.Errorf("lib links to %q", tr[root+"/lib"].link)
	}
	if err := tr.add(filepath.Join(root, "usr/lib/libz.so.1.3/x")); err == nil {
		t.Error("a path through a regular file was taken")
	}
}
