// Command bootbench measures how long an image takes to boot under QEMU
// until the init hands over to the app (the console's exec line), against
// the floor measured in the same run: the same kernel, memory and QEMU
// flags with an init that powers off at once. It also reports the time to
// the first HTTP answer. It prints a markdown table.
//
//	go run ./bench/bootbench -image out/hello-node -floor-init /tmp/floorinit -rounds 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/bench/internal/floor"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/vm"
)

func main() {
	layout := flag.String("image", "", "image layout directory to boot (e.g. a build of example/hello-node)")
	floorInit := flag.String("floor-init", "", "static floor init binary (bench/floorinit)")
	rounds := flag.Int("rounds", 5, "boots of each kind, alternated")
	port := flag.Int("port", 8083, "guest port whose first HTTP answer is timed (0: none)")
	accel := flag.String("accel", vm.AccelAuto, "accelerator")
	flag.Parse()
	if *layout == "" || *floorInit == "" {
		flag.Usage()
		os.Exit(2)
	}
	floor, err := floor.Layout(*layout, *floorInit)
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(floor)
	var floorT, execT, httpT []time.Duration
	for i := 0; i < *rounds; i++ {
		f, _, err := boot(floor, 0, *accel)
		if err != nil {
			fail(fmt.Errorf("floor boot: %w", err))
		}
		e, h, err := boot(*layout, *port, *accel)
		if err != nil {
			fail(fmt.Errorf("image boot: %w", err))
		}
		floorT, execT = append(floorT, f), append(execT, e)
		if h > 0 {
			httpT = append(httpT, h)
		}
		fmt.Fprintf(os.Stderr, "round %d: floor %v, exec %v, http %v\n", i+1, f.Round(time.Millisecond), e.Round(time.Millisecond), h.Round(time.Millisecond))
	}
	fm, em := median(floorT), median(execT)
	fmt.Printf("| boot under %s, %d rounds (median) | time | vs floor |\n|---|---|---|\n", accelName(*accel), *rounds)
	fmt.Printf("| floor: same kernel, init powers off at once | %.2f s | 1.00× |\n", fm.Seconds())
	fmt.Printf("| %s: until the init execs the app | %.2f s | %.2f× |\n", filepath.Base(*layout), em.Seconds(), em.Seconds()/fm.Seconds())
	if len(httpT) > 0 {
		hm := median(httpT)
		fmt.Printf("| %s: until the first HTTP answer on :%d | %.2f s | %.2f× |\n", filepath.Base(*layout), *port, hm.Seconds(), hm.Seconds()/fm.Seconds())
	}
}

// boot runs the layout once and returns the time from start to the exec
// line, and to the first HTTP answer on port (then stops the VM).
func boot(dir string, port int, accel string) (execAt, httpAt time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := layout.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	if err := l.Verify(ctx); err != nil { // before the clock starts
		return 0, 0, err
	}
	start := time.Now()
	seen := make(chan time.Time, 1)
	opts := []vm.Option{vm.WithAccel(accel), vm.WithConsole(io.Discard), vm.WithExecHook(func(t time.Time) { seen <- t })}
	if port > 0 {
		opts = append(opts, vm.WithPorts(vm.PortForward{HostPort: uint16(port), GuestPort: uint16(port), Protocol: vm.TCP}))
	}
	done := make(chan error, 1)
	go func() { _, err := vm.Run(ctx, l, opts...); done <- err }()
	if port > 0 {
		client := &http.Client{Timeout: time.Second}
		for httpAt == 0 {
			select {
			case err := <-done:
				return 0, 0, fmt.Errorf("VM stopped before answering: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			if resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
				resp.Body.Close()
				httpAt = time.Since(start)
			}
		}
		cancel()
	}
	err = <-done
	if err != nil && !errors.Is(err, context.Canceled) && port == 0 {
		return 0, 0, err
	}
	select {
	case t := <-seen:
		return t.Sub(start), httpAt, nil
	default:
		return 0, 0, fmt.Errorf("no exec line on the console (%v)", err)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func accelName(a string) string {
	if got, err := vm.PickAccel(a); err == nil {
		return got
	}
	return a
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bootbench:", err)
	os.Exit(1)
}
