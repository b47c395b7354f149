package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConvertUsage(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", disk}, `"format" not set`},
		{[]string{"convert", "--format", "vdi", disk}, "unknown disk format"},
		{[]string{"convert", "--format", "vhd", "--compress", disk}, "--compress"},
		{[]string{"convert", "--format", "raw", "-o", disk, disk}, "is the input disk"},
	} {
		status, _, stderr := cli(t, ctx, c.args...)
		if status == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("uni %q: status %d, stderr %q, want %q", c.args, status, stderr, c.want)
		}
	}
	// The default output: the input's name with the format's extension.
	status, stdout, stderr := cli(t, ctx, "convert", "--format", "qcow2", "--compress", disk)
	want := filepath.Join(dir, "disk.qcow2")
	if status != 0 || strings.TrimSpace(stdout) != want {
		t.Fatalf("convert: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	b, err := os.ReadFile(want)
	if err != nil || !bytes.HasPrefix(b, []byte("QFI\xfb")) {
		t.Errorf("%s: %v, not a qcow2", want, err)
	}
	// A cancelled conversion exits as interrupted and leaves nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	out := filepath.Join(dir, "x.vmdk")
	if status, _, _ := cli(t, cctx, "convert", "--format", "vmdk", "-o", out, disk); status != 130 {
		t.Errorf("cancelled convert: status %d, want 130", status)
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 {
		t.Errorf("cancelled convert left %v beside disk.img and disk.qcow2", left)
	}
}
