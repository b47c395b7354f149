package deflate

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand/v2"
	"testing"
)

// TestRoundTrip inflates what the compressor wrote with the standard
// library and wants the input back, for every level.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := [][]byte{nil, []byte("a"), bytes.Repeat([]byte("abc"), 50000), make([]byte, 100000)}
	mixed := make([]byte, 300000)
	for i := range mixed {
		if i%7000 < 3000 {
			mixed[i] = byte(r.IntN(4)) // skewed, short repeats
		} else {
			mixed[i] = byte(r.Uint32())
		}
	}
	inputs = append(inputs, mixed)
	for level := -2; level <= 9; level++ {
		for _, in := range inputs {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, level)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(in)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(flate.NewReader(&buf))
			if err != nil || !bytes.Equal(out, in) {
				t.Errorf("level %d, %d bytes: round trip failed: %v", level, len(in), err)
			}
		}
	}
}

// TestWindow wants no match farther back than 4 KiB: a block repeated at
// 8 KiB distance must not shrink.
func TestWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	block := make([]byte, 8192)
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	in := append(append([]byte{}, block...), block...)
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, 9)
	w.Write(in)
	w.Close()
	if buf.Len() < len(in) {
		t.Errorf("%d random bytes repeated at 8 KiB compressed to %d: a match beyond the window", len(in), buf.Len())
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello hello hello"), 6)
	f.Add(bytes.Repeat([]byte{0x7d, 0xff, 0x8f, 0x46}, 1000), 9)
	f.Fuzz(func(t *testing.T, in []byte, level int) {
		level = (level%12+12)%12 - 2
		var buf bytes.Buffer
		w, err := NewWriter(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(in)
		w.Close()
		out, err := io.ReadAll(flate.NewReader(&buf))
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("level %d: round trip failed: %v", level, err)
		}
	})
}
