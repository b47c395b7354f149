package testtool

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The testdata are real `docker buildx build --progress=plain` outputs of
// buildx v0.38.2 against buildkitd v0.34.2: a first build, and a rebuild
// that adds a failing RUN.

func TestParseProgressRun(t *testing.T) {
	p := ParseProgress(readTestdata(t, "progress-run.txt"))
	if len(p) != 9 || p[0].ID != 0 || p[8].Name != "exporting to client directory" {
		t.Fatalf("vertices: %+v", p)
	}
	run, ok := p.Find("RUN cat /a")
	if !ok {
		t.Fatal("no RUN vertex")
	}
	want := Vertex{ID: 7, Name: "[3/3] RUN cat /a && echo second line", Done: true, Logs: []string{"from a", "second line"}}
	if !reflect.DeepEqual(run, want) {
		t.Errorf("RUN vertex = %+v, want %+v", run, want)
	}
	from, _ := p.Find("FROM ")
	if from.Cached || !from.Done || len(from.Status) != 4 {
		t.Errorf("FROM vertex = %+v", from)
	}
	if _, ok := p.Find("no such step"); ok {
		t.Error("Find found a step that is not there")
	}
}

func TestParseProgressCachedAndError(t *testing.T) {
	p := ParseProgress(readTestdata(t, "progress-error.txt"))
	for _, name := range []string{"COPY a /a", "RUN cat /a"} {
		if v, ok := p.Find(name); !ok || !v.Cached || v.Done {
			t.Errorf("%s: %+v, %v; want cached", name, v, ok)
		}
	}
	failed, ok := p.Find("RUN echo failing")
	if !ok || failed.Cached || failed.Done ||
		failed.Error != `process "/bin/sh -c echo failing && false" did not complete successfully: exit code: 1` ||
		!reflect.DeepEqual(failed.Logs, []string{"failing"}) {
		t.Errorf("failed RUN = %+v", failed)
	}
}

// Plain progress repeats a vertex's name when steps interleave; the name
// is not a log or status line.
func TestParseProgressInterleaved(t *testing.T) {
	p := ParseProgress("#1 [a] RUN x\n#2 [b] RUN y\n#1 [a] RUN x\n#1 0.1 out\r\n#2 [b] RUN y\n#2 CACHED\n#1 DONE 0.2s\n")
	want := Progress{
		{ID: 1, Name: "[a] RUN x", Done: true, Logs: []string{"out"}},
		{ID: 2, Name: "[b] RUN y", Cached: true},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzParseProgress: any text parses without a panic into vertices with
// distinct ids, each named by a "#ID NAME" line of the input.
func FuzzParseProgress(f *testing.F) {
	for _, name := range []string{"progress-run.txt", "progress-error.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, plain string) {
		seen := map[int]bool{}
		for _, v := range ParseProgress(plain) {
			if seen[v.ID] {
				t.Fatalf("vertex #%d twice", v.ID)
			}
			seen[v.ID] = true
			if !strings.Contains(plain, "#"+strconv.Itoa(v.ID)+" "+v.Name) {
				t.Fatalf("vertex #%d %q is not a line of the input", v.ID, v.Name)
			}
		}
	})
}
