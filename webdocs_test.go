package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// .web-docs is generated (scripts/web-docs.sh) from docs/packer/ and the
// configs' comments: regenerating it must change nothing, so a field added
// or reworded in a config is in the registry's docs too.
func TestWebDocsAreFresh(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("scripts/web-docs.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/web-docs.sh: %v\n%s", err, b)
	}
	want := readTree(t, out)
	got := readTree(t, ".web-docs")
	delete(got, "metadata.hcl") // written by hand
	if len(want) == 0 {
		t.Fatal("scripts/web-docs.sh wrote nothing")
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf(".web-docs/%s is stale: run scripts/web-docs.sh", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf(".web-docs/%s is not generated any more: remove it", name)
		}
	}
}

// readTree maps each regular file under dir, by its path relative to dir,
// to its contents.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
