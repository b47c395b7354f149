package unikernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pollEvery is how often a tcp or http check is tried again.
const pollEvery = 250 * time.Millisecond

// waitTCP returns when addr accepts a connection, or ctx ends.
func waitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			// QEMU's user network accepts on the host side at once and
			// only then connects to the guest; a guest that is not
			// listening answers with a reset and QEMU closes the
			// connection. So a port counts as open when the connection
			// sends data or stays open for openFor. (Before the guest's
			// network is up nothing answers at all and the connection
			// stays open: boot starts the check only once the init has
			// started the app.)
			ok := stillOpen(c, openFor)
			c.Close()
			if ok {
				return nil
			}
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// openFor is how long a tcp check's connection must stay open.
const openFor = 500 * time.Millisecond

// stillOpen reports whether c sends data or stays open for d (no EOF or reset).
func stillOpen(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err == nil || (errors.As(err, &ne) && ne.Timeout())
}

// waitHTTP returns when a GET of url answers status with a body holding
// contains, or ctx ends; its error then wraps why the last try failed.
func waitHTTP(ctx context.Context, url string, status int, contains string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for {
		last = tryHTTP(ctx, client, url, status, contains)
		if last == nil {
			return nil
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return fmt.Errorf("%w (last try: %w)", err, last)
		}
	}
}

func tryHTTP(ctx context.Context, client *http.Client, url string, status int, contains string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, status)
	}
	if contains != "" && !strings.Contains(string(body), contains) {
		return fmt.Errorf("GET %s: body lacks %q", url, contains)
	}
	return nil
}

// lineWatcher is the console writer of a console check: it copies the
// console to out line by line and closes found when a line contains want
// (never when want is empty).
type lineWatcher struct {
	pw   *io.PipeWriter
	done chan struct{}
}

func newLineWatcher(want string, out io.Writer, found chan<- struct{}) *lineWatcher {
	pr, pw := io.Pipe()
	w := &lineWatcher{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			if out != nil {
				fmt.Fprintln(out, line)
			}
			if !seen && want != "" && strings.Contains(line, want) {
				seen = true
				close(found)
			}
		}
		// Drain after a too-long line so the VM's writes never block.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return w
}

func (w *lineWatcher) Write(p []byte) (int, error) { return w.pw.Write(p) }

// Close ends the console and returns once every line has been forwarded.
func (w *lineWatcher) Close() error {
	err := w.pw.Close()
	<-w.done
	return err
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (uint16, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	_, p, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	return uint16(n), err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
