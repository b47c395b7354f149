package unikernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/vm"
)

// errNotReady is wrapped by the error of a readiness check that ran out of time.
var errNotReady = errors.New("the image did not become ready")

// stepBoot boots the layout once under QEMU and waits for the readiness
// check within its timeout. The VM is stopped before the step returns,
// whatever happened: vm.Run never returns while QEMU runs.
type stepBoot struct {
	cfg *Config
	st  *runState
}

func (s *stepBoot) Run(ctx context.Context, bag multistep.StateBag) multistep.StepAction {
	ui := bag.Get("ui").(packersdk.Ui)
	l, err := layout.Open(s.st.Dir)
	if err != nil {
		return halt(bag, ui, err)
	}
	s.st.Layout = l
	r := s.cfg.Ready
	ui.Say(fmt.Sprintf("Booting %s once; waiting up to %s for %s", s.st.Dir, r.Timeout, describe(r)))
	if err := boot(ctx, l, r, uiWriter{ui}); err != nil {
		return halt(bag, ui, err)
	}
	ui.Say("The image is ready")
	return multistep.ActionContinue
}

func (s *stepBoot) Cleanup(multistep.StateBag) {}

func describe(r ReadyConfig) string {
	switch r.Type {
	case ReadyTCP:
		return fmt.Sprintf("guest port %d to accept", r.Port)
	case ReadyHTTP:
		return fmt.Sprintf("GET %s on guest port %d to answer %d", r.Path, r.Port, r.Status)
	case ReadyConsole:
		return fmt.Sprintf("a console line containing %q", r.Line)
	default:
		return fmt.Sprintf("the app to exit with status %d", r.ExitStatus)
	}
}

// boot runs l and applies r; it returns once the VM has stopped.
func boot(ctx context.Context, l *layout.Layout, r ReadyConfig, console io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()

	// tcp and http checks start once the init has started the app: until
	// the guest's network is up, QEMU holds a forwarded connection open
	// unanswered, which a tcp check would take for an open port.
	started := make(chan struct{})
	var once sync.Once
	opts := []vm.Option{vm.WithLog(console), vm.WithExecHook(func(time.Time) { once.Do(func() { close(started) }) })}
	var hostAddr string
	if r.Type == ReadyTCP || r.Type == ReadyHTTP {
		hp, err := freePort()
		if err != nil {
			return fmt.Errorf("ready: finding a host port: %w", err)
		}
		opts = append(opts, vm.WithPorts(vm.PortForward{HostPort: hp, GuestPort: uint16(r.Port), Protocol: vm.TCP}))
		hostAddr = net.JoinHostPort(vm.DefaultHostIP().String(), strconv.Itoa(int(hp)))
	}
	// The console goes to the UI line by line; a console check also
	// watches it for its line.
	found := make(chan struct{})
	want := ""
	if r.Type == ReadyConsole {
		want = r.Line
	}
	w := newLineWatcher(want, console, found)
	defer w.Close()
	opts = append(opts, vm.WithConsole(w))

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		st, err := vm.Run(ctx, l, opts...)
		done <- result{st, err}
	}()

	var check <-chan error
	switch r.Type {
	case ReadyTCP:
		check = async(func() error { return afterStart(ctx, started, func() error { return waitTCP(ctx, hostAddr) }) })
	case ReadyHTTP:
		url := "http://" + hostAddr + r.Path
		check = async(func() error {
			return afterStart(ctx, started, func() error { return waitHTTP(ctx, url, r.Status, r.BodyContains) })
		})
	}

	select {
	case res := <-done: // the app stopped by itself
		if r.Type == ReadyExit {
			if res.err != nil {
				return notReady(ctx, r, res.err)
			}
			if res.status != r.ExitStatus {
				return fmt.Errorf("ready: the app exited with status %d, want %d", res.status, r.ExitStatus)
			}
			return nil
		}
		if res.err != nil {
			return notReady(ctx, r, res.err)
		}
		return fmt.Errorf("ready: the app exited with status %d before %s", res.status, describe(r))
	case err := <-check:
		cancel()
		<-done
		if err != nil {
			return notReady(ctx, r, err)
		}
		return nil
	case <-found:
		cancel()
		<-done
		return nil
	}
}

func notReady(ctx context.Context, r ReadyConfig, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("ready: %w within %s (waiting for %s): %w", errNotReady, r.Timeout, describe(r), err)
	}
	return fmt.Errorf("ready: %w", err)
}

// afterStart runs f once started is closed, or returns ctx's error.
func afterStart(ctx context.Context, started <-chan struct{}, f func() error) error {
	select {
	case <-started:
		return f()
	case <-ctx.Done():
		return fmt.Errorf("the app was not started: %w", ctx.Err())
	}
}

func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}
