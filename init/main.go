// Command init is PID 1 of every uni guest. It mounts the kernel
// filesystems, loads the modules the devices need, finds and mounts the
// read-only rootfs and moves into it, brings up the network, starts the app,
// stays PID 1 to forward signals and reap zombies, and when the app exits
// prints its exit status on the console and powers the VM off.
//
// It runs from the initrd, so it reads its config from /uni/init.json and
// the module index from /uni/modules.json there, and nothing else.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/init/modprobe"
	"github.com/uniforge/packer-plugin-unikernel/init/netconf"
	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// InitFailureStatus is the exit status reported when the init itself fails
// before or while starting the app (as `docker run` uses 125 for its own
// errors).
const InitFailureStatus = 125

// Timeouts on the boot path.
const (
	// rootfsWait bounds the wait for the rootfs block device to appear.
	rootfsWait = 10 * time.Second
	// dhcpWait bounds DHCP; apps that need no network should not pay for a
	// missing server with more than this.
	dhcpWait = 3 * time.Second
)

// newRoot is where the rootfs is mounted before the switch.
const newRoot = spec.NewRootPath

func main() {
	con := openConsole()
	status := InitFailureStatus
	func() {
		defer func() {
			if r := recover(); r != nil {
				con.errorf("panic: %v", r)
				status = InitFailureStatus
			}
		}()
		var err error
		status, err = run(con)
		if err != nil {
			con.errorf("%v", err)
			status = InitFailureStatus
		}
	}()
	con.printf("%s%d\n", spec.ExitMarker, status)
	powerOff(con)
}

// run boots the app and returns its exit status.
func run(con *console) (int, error) {
	if err := mountEarly(); err != nil {
		return 0, err
	}
	con.attach()
	con.debug = kernelCmdlineHas("uni.debug")
	con.mark("init started")

	var cfg spec.InitConfig
	if err := readJSON(spec.InitConfigPath, &cfg); err != nil {
		return 0, err
	}
	if len(cfg.Args) == 0 || !strings.HasPrefix(cfg.Args[0], "/") {
		return 0, fmt.Errorf("%s: args: need an absolute program path, have %q", spec.InitConfigPath, cfg.Args)
	}
	var idx spec.ModuleIndex
	if err := readJSON(spec.ModuleIndexPath, &idx); err != nil {
		return 0, err
	}
	var trace []modprobe.Option
	if con.debug {
		trace = append(trace, modprobe.WithTrace(func(name string, took time.Duration) {
			con.mark(fmt.Sprintf("module %s loaded in %.1fms", name, float64(took.Microseconds())/1000))
		}))
	}
	loader, err := modprobe.New(&idx, "/", trace...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", spec.ModuleIndexPath, err)
	}

	// Modules first (the always-modules and the coldplug in parallel); the
	// network waits for them, since the NIC driver is one of them, and then
	// runs while the rootfs is searched for and mounted.
	modulesDone := make(chan struct{})
	go func() {
		defer close(modulesDone)
		if len(idx.Modules) == 0 {
			// A kernel with its drivers built in (linux-mini): nothing
			// to load, and no sysfs walk for modaliases.
			con.mark("no modules to load")
			return
		}
		alwaysErr := make(chan error, 1)
		go func() { alwaysErr <- loader.LoadAll(idx.Always) }()
		if err := loader.Coldplug("/sys"); err != nil {
			con.errorf("coldplug: %v", err)
		}
		if err := <-alwaysErr; err != nil {
			con.errorf("%v", err)
		}
		con.mark("modules loaded")
	}()
	netDone := make(chan *netconf.Result, 1)
	go func() { netDone <- bringUpNetwork(con, cfg.Network, modulesDone) }()

	// The disk driver adds its disks (and their partitions) while it is
	// loaded, so the search starts after the coldplug rather than polling
	// beside it: the guest usually has one CPU, and polling would slow the
	// module loads down.
	<-modulesDone
	dev, err := waitForRootDevice(cfg.RootfsSuperblockDigest, rootfsWait)
	if err != nil {
		return 0, err
	}
	con.mark("rootfs found on " + dev)
	if err := switchRoot(dev, cfg.RootfsType); err != nil {
		return 0, err
	}
	con.mark("rootfs mounted")

	if res := <-netDone; res != nil && len(res.DNS) > 0 {
		if err := installResolvConf(res); err != nil {
			con.errorf("resolv.conf: %v", err)
		}
	}
	con.mark("network done")
	if err := installHosts(cfg.Hostname); err != nil {
		con.errorf("hosts: %v", err)
	}
	return runApp(con, &cfg)
}

// bringUpNetwork configures the network once the modules are in. Failures
// are warnings: the app may not need the network.
func bringUpNetwork(con *console, cfg spec.Network, modulesDone <-chan struct{}) *netconf.Result {
	if err := netconf.LoopbackUp(); err != nil {
		con.errorf("%v", err)
	}
	if cfg.Disabled {
		return nil
	}
	<-modulesDone
	ctx, cancel := context.WithTimeout(context.Background(), dhcpWait)
	defer cancel()
	res, err := netconf.Configure(ctx, cfg)
	if err != nil {
		con.errorf("network (continuing without it): %v", err)
	}
	return res
}

// installResolvConf writes /run/resolv.conf and binds it over
// /etc/resolv.conf, when the rootfs has one to cover (it is read-only).
func installResolvConf(res *netconf.Result) error {
	const runConf, etcConf = "/run/resolv.conf", spec.ResolvConfPath
	if err := atomicfile.WriteBytes(runConf, netconf.ResolvConf(res.DNS), 0o644); err != nil {
		return err
	}
	if _, err := os.Stat(etcConf); err != nil {
		return nil
	}
	return bindMount(runConf, etcConf)
}

// installHosts writes /run/hosts, with localhost and the guest's hostname
// as Docker's /etc/hosts has them, and binds it over /etc/hosts, so that
// the app can resolve its own name (dns.lookup(os.hostname()) in node).
func installHosts(hostname string) error {
	const runHosts = "/run/hosts"
	if err := atomicfile.WriteBytes(runHosts, hostsFile(hostname), 0o644); err != nil {
		return err
	}
	if _, err := os.Stat(spec.HostsPath); err != nil {
		return nil
	}
	return bindMount(runHosts, spec.HostsPath)
}

// hostsFile is the guest's /etc/hosts.
func hostsFile(hostname string) []byte {
	b := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" {
		b += "127.0.1.1\t" + hostname + "\n"
	}
	return []byte(b)
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func kernelCmdlineHas(word string) bool {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if f == word {
			return true
		}
	}
	return false
}
