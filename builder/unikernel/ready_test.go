package unikernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// acceptTCP listens on a loopback port for the test's duration and returns
// its address. It accepts every connection and holds it open until the test
// ends (hold), or closes it at once.
func acceptTCP(t *testing.T, hold bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if hold {
				held = append(held, c)
			} else {
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done // the accept loop has stopped: held is ours
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestWaitTCP(t *testing.T) {
	addr := acceptTCP(t, true) // held open, as a listening app does
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := waitTCP(ctx, addr); err != nil {
		t.Fatal(err)
	}
}

// A port whose peer closes at once (QEMU's forward with no guest listener)
// is not ready: waitTCP runs into its deadline.
func TestWaitTCPClosedAtOnceIsNotReady(t *testing.T) {
	addr := acceptTCP(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	if err := waitTCP(ctx, addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitTCP = %v, want the deadline", err)
	}
}

func TestWaitHTTP(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 { // not ready yet
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Hello from Go")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, srv.URL+"/", 200, "Hello"); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n < 3 {
		t.Errorf("ready after %d calls, want 3", n)
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel2()
	err := waitHTTP(ctx2, srv.URL+"/", 200, "Goodbye")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `body lacks "Goodbye"`) {
		t.Fatalf("waitHTTP with a body that never matches = %v", err)
	}
}

func TestLineWatcher(t *testing.T) {
	pr, pw := io.Pipe()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(pr); got <- string(b) }()
	found := make(chan struct{})
	w := newLineWatcher("listening on :8080", pw, found)
	// Console output arrives in arbitrary chunks, not lines.
	for _, chunk := range []string{"uni: exec /he", "llo\n2026 hello-go listen", "ing on :8080\nmore\n"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-found:
	case <-time.After(5 * time.Second):
		t.Fatal("the line was not found")
	}
	w.Close() // returns once every line is forwarded
	pw.Close()
	if s := <-got; s != "uni: exec /hello\n2026 hello-go listening on :8080\nmore\n" {
		t.Errorf("console forwarded as %q", s)
	}
}
