package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkWrite100MB writes a disk around a 100 MB rootfs (random bytes,
// as compressed squashfs is) and, for reference, copies a raw file of the
// same size as the whole disk with qemu-img convert and dd.
//
//	go test -run '^$' -bench Write100MB -benchtime 5x ./image/disk
func BenchmarkWrite100MB(b *testing.B) {
	dir := b.TempDir()
	in := fakeInputs(b, dir)
	writeRandom(b, in.Rootfs, 100*mib, 5)
	in.DataSize = 0
	out := filepath.Join(dir, "disk.img")
	b.Run("disk.Write", func(b *testing.B) {
		for b.Loop() {
			if err := Write(context.Background(), out, in); err != nil {
				b.Fatal(err)
			}
		}
		fi, _ := os.Stat(out)
		b.SetBytes(fi.Size())
	})
	layout, err := Plan(in)
	if err != nil {
		b.Fatal(err)
	}
	raw := filepath.Join(dir, "raw.img")
	writeRandom(b, raw, layout.Size(), 6)
	for _, ref := range []struct {
		name string
		argv []string
	}{
		{"qemu-img-convert", []string{"qemu-img", "convert", "-f", "raw", "-O", "raw", raw, filepath.Join(dir, "conv.img")}},
		{"dd", []string{"dd", "if=" + raw, "of=" + filepath.Join(dir, "dd.img"), "bs=1M", "conv=fsync", "status=none"}},
	} {
		b.Run(ref.name, func(b *testing.B) {
			needTool(b, ref.argv[0])
			for b.Loop() {
				if out, err := exec.Command(ref.argv[0], ref.argv[1:]...).CombinedOutput(); err != nil {
					b.Fatalf("%v: %v\n%s", ref.argv, err, out)
				}
			}
			b.SetBytes(layout.Size())
		})
	}
}
