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
	task.Add(2 << 20)
	clock = clock.Add(2500 * time.Millisecond)
	task.Done()
	task.Done() // once only
	failed := r.Start("unpacking", "unpacked", "y.deb", -1)
	failed.Fail()
	want := "downloading linux-image-x 1 (3.0 MiB)\ndownloaded linux-image-x 1 (3.0 MiB) in 2.5s\nunpacking y.deb\n"
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
