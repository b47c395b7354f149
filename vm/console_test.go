package vm

import (
	"strings"
	"testing"
	"time"
)

const bootLog = "[    0.000000] Linux version 6.1\r\nuni: exec /x --flag\r\nhello from the app\r\nuni: exit status 3\r\n"

// Every way of cutting the console into writes must give the same result.
func TestConsoleScannerFindsMarkersAcrossSplitWrites(t *testing.T) {
	for chunk := 1; chunk <= len(bootLog); chunk++ {
		var execs int
		s := newConsoleScanner(5, func(time.Time) { execs++ })
		for i := 0; i < len(bootLog); i += chunk {
			s.Write([]byte(bootLog[i:min(i+chunk, len(bootLog))]))
		}
		status, ok := s.exitStatus()
		if !ok || status != 3 || execs != 1 {
			t.Fatalf("chunk %d: status %d, seen %v, exec hook ran %d times", chunk, status, ok, execs)
		}
		select {
		case <-s.exitSeen():
		default:
			t.Fatalf("chunk %d: exitSeen not closed", chunk)
		}
		if tail := s.lastLines(); tail[len(tail)-1] != "uni: exit status 3" {
			t.Fatalf("chunk %d: tail %q lost the carriage return handling", chunk, tail)
		}
	}
}

func TestConsoleScannerExecHookGetsTheTimeTheLineArrived(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var got time.Time
	s := newConsoleScanner(5, func(seen time.Time) { got = seen })
	s.now = func() time.Time { return at }
	s.Write([]byte("uni: ex"))
	if !got.IsZero() {
		t.Fatal("hook ran before the line was complete")
	}
	s.Write([]byte("ec /app\n"))
	if !got.Equal(at) {
		t.Fatalf("hook time %v, want %v", got, at)
	}
}

func TestConsoleScannerLastExitLineWinsAndJunkIsIgnored(t *testing.T) {
	s := newConsoleScanner(5, nil)
	s.Write([]byte("uni: exit status soon\n"))
	if _, ok := s.exitStatus(); ok {
		t.Fatal("a non-numeric status was taken as the exit line")
	}
	s.Write([]byte("app says uni: exit status 0\n[  1.2] kernel noise uni: exit status 42\r\n"))
	if status, ok := s.exitStatus(); !ok || status != 42 {
		t.Fatalf("status %d, %v; want the last line's 42", status, ok)
	}
}

func TestConsoleScannerUnterminatedLastLine(t *testing.T) {
	s := newConsoleScanner(5, nil)
	s.Write([]byte("uni: exit status 7"))
	if _, ok := s.exitStatus(); ok {
		t.Fatal("took a line before it ended")
	}
	s.flush()
	if status, ok := s.exitStatus(); !ok || status != 7 {
		t.Fatalf("after flush: %d, %v", status, ok)
	}
}

func TestConsoleScannerKeepsOnlyTheTail(t *testing.T) {
	s := newConsoleScanner(3, nil)
	for _, l := range []string{"a", "b", "c", "d", "e"} {
		s.Write([]byte(l + "\n"))
	}
	if got := strings.Join(s.lastLines(), ","); got != "c,d,e" {
		t.Fatalf("tail %q", got)
	}
	s.Write([]byte(strings.Repeat("x", 3*maxLineBytes)))
	if len(s.partial) > maxLineBytes {
		t.Fatalf("partial line grew to %d bytes", len(s.partial))
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	b := &tailBuffer{max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if b.String() != "defg" {
		t.Fatalf("tail %q", b.String())
	}
}

func TestConsoleScannerRemembersTheFirstPanicLine(t *testing.T) {
	s := newConsoleScanner(2, nil)
	s.Write([]byte("[ 6.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n"))
	for i := 0; i < 10; i++ {
		s.Write([]byte("[ 6.1] trace line\n"))
	}
	if got := s.kernelPanic(); !strings.Contains(got, "Attempted to kill init") {
		t.Fatalf("panic line %q", got)
	}
}
