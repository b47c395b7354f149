package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
)

func TestExitStatus(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name   string
		ctx    context.Context
		err    error
		status int
		stderr string
	}{
		{"success", context.Background(), nil, 0, ""},
		{"the app's status", context.Background(), fmt.Errorf("run: %w", exitStatusError{42}), 42, ""},
		{"an error", context.Background(), errors.New("boom"), 1, "uni: boom\n"},
		{"cancelled, wrapped", context.Background(), fmt.Errorf("Unifile:3: COPY: %w", context.Canceled), 130, "uni: stopped\n"},
		{"a signal arrived", cancelled, errors.New("read: file already closed"), 130, "uni: stopped\n"},
		{"a usage error", context.Background(), usageError{nil, errors.New("bad")}, 2, "uni: bad\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := exitStatus(c.ctx, c.err, &stderr); got != c.status {
				t.Errorf("exit status %d, want %d", got, c.status)
			}
			if stderr.String() != c.stderr {
				t.Errorf("printed %q, want %q", stderr.String(), c.stderr)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text: ok", "plain text: ok"},
		{"two\nlines\tand a tab", "two\nlines\tand a tab"},
		{"ünïcödé ✓ 日本", "ünïcödé ✓ 日本"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"nul\x00bell\x07cr\r", `nul\x00bell\acr\r`},
		{"\x7fELF\x02\x01", `\x7fELF\x02\x01`},
		{"bad utf8 \xff\xfe end", `bad utf8 \xff\xfe end`},
		{"cut \xe2\x82 rune", `cut \xe2\x82 rune`},
		{"bidi \u202eevil", `bidi \u202eevil`},
		{"c1 \u009b csi", `c1 \u009b csi`},
	}
	for _, c := range cases {
		got := printable(c.in)
		if got != c.want {
			t.Errorf("printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzPrintable: whatever an error holds, what reaches the terminal is valid
// UTF-8 without control characters but newline and tab.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "a\nb", "\x1b]0;title\x07", "\xff", "\u202e", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := printable(s)
		if !utf8.ValidString(out) {
			t.Fatalf("printable(%q) = %q: invalid UTF-8", s, out)
		}
		for _, r := range out {
			if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("printable(%q) = %q: holds control character %U", s, out, r)
			}
		}
	})
}
