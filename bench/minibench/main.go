// Command minibench compares two kernels booting the same apps under QEMU,
// alternating rounds: QEMU start until the floor init powers the VM off
// (bench/floorinit), until hello-go's first HTTP answer and until
// hello-node's, each image on the machine uni picks for it (microvm for
// linux-mini, q35 for the cloud kernel), plus the kernel's bytes and the
// least memory at which hello-go answers. It prints a markdown table.
//
//	go run ./bench/minibench -floor-init F -go-a DIR -go-b DIR -node-a DIR -node-b DIR -rounds 9
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/bench/internal/floor"
	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
	"github.com/uniforge/packer-plugin-unikernel/vm"
)

// pollEvery and pollTimeout: the first answer is looked for every 20 ms,
// each try giving up after 100 ms, so the time is not quantised into
// client-timeout steps.
const (
	pollEvery   = 20 * time.Millisecond
	pollTimeout = 100 * time.Millisecond
)

// kernelSide is one kernel's images.
type kernelSide struct {
	name          string
	goDir, nodeDr string // hello-go and hello-node layouts
	floor         string // a copy of the hello-go layout with the floor init
	machine       string // "" (uni's choice) or a forced machine
}

func main() {
	floorInit := flag.String("floor-init", "", "static floor init (bench/floorinit)")
	goA := flag.String("go-a", "", "hello-go layout on kernel A (the cloud kernel)")
	goB := flag.String("go-b", "", "hello-go layout on kernel B (linux-mini)")
	nodeA := flag.String("node-a", "", "hello-node layout on kernel A")
	nodeB := flag.String("node-b", "", "hello-node layout on kernel B")
	nameA := flag.String("name-a", "cloud", "kernel A's name in the table")
	nameB := flag.String("name-b", "linux-mini", "kernel B's name in the table")
	rounds := flag.Int("rounds", 9, "rounds, alternated")
	q35B := flag.Bool("q35-b", true, "also boot kernel B's floor on q35, to tell the machine's share from the kernel's")
	memory := flag.Bool("memory", true, "search the least memory at which hello-go answers")
	flag.Parse()
	if *floorInit == "" || *goA == "" || *goB == "" || *nodeA == "" || *nodeB == "" {
		flag.Usage()
		os.Exit(2)
	}
	sides := []*kernelSide{{name: *nameA, goDir: *goA, nodeDr: *nodeA}, {name: *nameB, goDir: *goB, nodeDr: *nodeB}}
	for _, s := range sides {
		f, err := floor.Layout(s.goDir, *floorInit)
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(f)
		s.floor = f
	}
	if *q35B {
		sides = append(sides, &kernelSide{name: *nameB + " on q35", goDir: *goB, nodeDr: *nodeB, floor: sides[1].floor, machine: vm.MachineQ35})
	}
	floorT := make([][]time.Duration, len(sides))
	goT := make([][]time.Duration, len(sides))
	nodeT := make([][]time.Duration, len(sides))
	for r := 0; r < *rounds; r++ {
		// Who goes first alternates too.
		order := make([]int, len(sides))
		for i := range order {
			order[i] = (i + r) % len(sides)
		}
		for _, i := range order {
			s := sides[i]
			f, err := bootUntilExit(s.floor, s.machine)
			if err != nil {
				fail(fmt.Errorf("%s floor: %w", s.name, err))
			}
			g, err := bootUntilHTTP(s.goDir, s.machine, 8080, 0)
			if err != nil {
				fail(fmt.Errorf("%s hello-go: %w", s.name, err))
			}
			n, err := bootUntilHTTP(s.nodeDr, s.machine, 8083, 0)
			if err != nil {
				fail(fmt.Errorf("%s hello-node: %w", s.name, err))
			}
			floorT[i], goT[i], nodeT[i] = append(floorT[i], f), append(goT[i], g), append(nodeT[i], n)
			fmt.Fprintf(os.Stderr, "round %d %s: floor %v, hello-go %v, hello-node %v\n", r+1, s.name,
				f.Round(time.Millisecond), g.Round(time.Millisecond), n.Round(time.Millisecond))
		}
	}
	accel, _ := vm.PickAccel(vm.AccelAuto)
	fmt.Printf("| under %s, %d alternated rounds, medians | %s |\n|---|", accel, *rounds, joinNames(sides))
	for range sides {
		fmt.Print("---:|")
	}
	fmt.Println()
	row := func(what string, ts [][]time.Duration) {
		fmt.Printf("| %s |", what)
		base := median(ts[0])
		for i := range sides {
			m := median(ts[i])
			if i == 0 {
				fmt.Printf(" %.2f s |", m.Seconds())
			} else {
				fmt.Printf(" %.2f s (%.2f×) |", m.Seconds(), m.Seconds()/base.Seconds())
			}
		}
		fmt.Println()
	}
	row("QEMU start → floor init powers off", floorT)
	row("QEMU start → hello-go's first HTTP answer", goT)
	row("QEMU start → hello-node's first HTTP answer", nodeT)
	fmt.Print("| kernel bytes |")
	for i, s := range sides {
		fi, err := os.Stat(filepath.Join(s.goDir, spec.KernelFile))
		if err != nil {
			fail(err)
		}
		a, _ := os.Stat(filepath.Join(sides[0].goDir, spec.KernelFile))
		if i == 0 {
			fmt.Printf(" %.1f MB |", float64(fi.Size())/1e6)
		} else {
			fmt.Printf(" %.1f MB (%.2f×) |", float64(fi.Size())/1e6, float64(fi.Size())/float64(a.Size()))
		}
	}
	fmt.Println()
	if *memory {
		fmt.Print("| least MEMORY at which hello-go answers (4 MiB steps) |")
		for _, s := range sides {
			m, err := leastMemory(s)
			if err != nil {
				fail(fmt.Errorf("%s: %w", s.name, err))
			}
			fmt.Printf(" %d MiB |", m)
		}
		fmt.Println()
	}
}

func joinNames(sides []*kernelSide) string {
	s := ""
	for i, k := range sides {
		if i > 0 {
			s += " | "
		}
		s += k.name
	}
	return s
}

// leastMemory bisects the memory (MiB, in 4 MiB steps, from 32) at which
// hello-go still answers within a minute.
func leastMemory(s *kernelSide) (int64, error) {
	lo, hi := int64(28), int64(256) // lo fails by assumption (below uni's floor), hi answers
	if _, err := bootUntilHTTP(s.goDir, s.machine, 8080, hi); err != nil {
		return 0, fmt.Errorf("hello-go does not answer at %d MiB: %w", hi, err)
	}
	for hi-lo > 4 {
		mid := (lo + hi) / 2 / 4 * 4
		if mid <= lo {
			mid = lo + 4
		}
		if _, err := bootUntilHTTP(s.goDir, s.machine, 8080, mid); err == nil {
			hi = mid
		} else {
			lo = mid
		}
		fmt.Fprintf(os.Stderr, "%s: memory search: %d–%d MiB\n", s.name, lo, hi)
	}
	return hi, nil
}

func open(dir string) (*layout.Layout, error) {
	l, err := layout.Open(dir)
	if err != nil {
		return nil, err
	}
	return l, l.Verify(context.Background()) // before the clock starts
}

// bootUntilExit is the time from starting QEMU until it has exited.
func bootUntilExit(dir, machine string) (time.Duration, error) {
	l, err := open(dir)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err = vm.Run(ctx, l, vm.WithConsole(io.Discard), vm.WithMachine(machine), vm.WithPorts())
	return time.Since(start), err
}

// bootUntilHTTP is the time from starting QEMU until the app's first HTTP
// answer on a free host port forwarded to port; memMiB (0: the image's)
// sets the guest's memory. The VM is stopped then.
func bootUntilHTTP(dir, machine string, port int, memMiB int64) (time.Duration, error) {
	l, err := open(dir)
	if err != nil {
		return 0, err
	}
	host, err := freePort()
	if err != nil {
		return 0, err
	}
	limit := time.Minute
	if memMiB > 0 {
		limit = 30 * time.Second // a probe of the memory search: a guest short of memory fails fast or never answers
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	opts := []vm.Option{vm.WithConsole(io.Discard), vm.WithMachine(machine),
		vm.WithPorts(vm.PortForward{HostPort: uint16(host), GuestPort: uint16(port), Protocol: vm.TCP})}
	if memMiB > 0 {
		opts = append(opts, vm.WithMemory(memMiB<<20))
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := vm.Run(ctx, l, opts...); done <- err }()
	client := &http.Client{Timeout: pollTimeout}
	url := fmt.Sprintf("http://127.0.0.1:%d/", host)
	for {
		select {
		case err := <-done:
			return 0, fmt.Errorf("VM stopped before answering: %w", err)
		case <-ctx.Done():
			<-done
			return 0, fmt.Errorf("no answer within %s", limit)
		case <-time.After(pollEvery):
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		took := time.Since(start)
		cancel()
		<-done
		return took, nil
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "minibench:", err)
	os.Exit(1)
}
