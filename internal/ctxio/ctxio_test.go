package ctxio

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStopsAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var buf bytes.Buffer
	w := Writer(ctx, &buf)
	if _, err := w.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ws, wa := WriteSeeker(ctx, f), WriterAt(ctx, f)
	if _, err := wa.WriteAt([]byte("xy"), 4); err != nil {
		t.Fatal(err)
	}
	if off, err := ws.Seek(0, 2); err != nil || off != 6 {
		t.Fatalf("seek through the wrapper: %d, %v", off, err)
	}
	cancel()
	for name, write := range map[string]func() error{
		"Writer":      func() error { _, err := w.Write([]byte("b")); return err },
		"WriteSeeker": func() error { _, err := ws.Write([]byte("b")); return err },
		"WriterAt":    func() error { _, err := wa.WriteAt([]byte("b"), 0); return err },
	} {
		if err := write(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s after cancel: %v, want context.Canceled", name, err)
		}
	}
	if buf.String() != "a" {
		t.Fatalf("buffer holds %q, want only the write before the cancel", buf.String())
	}
}
