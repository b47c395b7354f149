package progress

import (
	"bytes"
	"testing"
	"time"
)

func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf)
	clock := time.Unix(0, 0)
	r.now = func() time.Time { return clock }
	task := r.Start("downloading", "downloaded", "linux-image-x 1", 3<<20)
	task.Write(make([]byte, 1<<20))
	clock = clock.Add(5 * time.Second) // a line every 5 s, on the next write
	task.Add(1 << 20)
	clock = clock.Add(time.Second)
	task.Add(1 << 20)
	task.Done()
	task.Done() // once only
	failed := r.Start("unpacking", "unpacked", "y.deb", -1)
	failed.Fail()
	want := "downloading linux-image-x 1 (3.0 MiB)\n" +
		"  linux-image-x 1: 66%, 2.0 MiB of 3.0 MiB, 409.6 KiB/s\n" +
		"downloaded linux-image-x 1 (3.0 MiB) in 6s\n" +
		"unpacking y.deb\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestNilReporter: a nil or writerless Reporter reports nothing and must not panic.
func TestNilReporter(t *testing.T) {
	var r *Reporter
	r.Printf("nothing %d", 1)
	task := r.Start("a", "b", "c", 10)
	task.Add(5)
	task.Done()
	New(nil).Start("a", "b", "c", 1).Done()
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 26705532: "25.5 MiB", 5 << 30: "5.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
