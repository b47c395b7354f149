package deb

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadPackage feeds arbitrary bytes to the .deb reader with extraction
// on: it must not panic, and must write nothing beside its destination.
func FuzzReadPackage(f *testing.F) {
	f.Add(makeDeb(f, []tarEntry{{name: "./boot/vmlinuz-1", body: "k", typ: tar.TypeReg}}))
	f.Add(makeDeb(f, []tarEntry{{name: "../evil", body: "x", typ: tar.TypeReg}}))
	f.Add(makeAr([][2]string{{"debian-binary", "2.0\n"}, {"control.tar", "junk"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		readPackage(context.Background(), bytes.NewReader(data), &extractor{dest: dest})
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("wrote beside the destination: %v", entries)
		}
	})
}
