package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/image/initrd"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// testApp is the guest's only program; its first argument picks what it does.
const testApp = `package main

import (
	"fmt"
	"net/http"
	"os"
	"syscall"
)

func main() {
	switch os.Args[1] {
	case "exit":
		os.Exit(3)
	case "info":
		wd, _ := os.Getwd()
		host, _ := os.Hostname()
		var lim syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		resolv, _ := os.ReadFile("/etc/resolv.conf")
		fmt.Printf("app: uid=%d gid=%d cwd=%s GREETING=%s host=%s nofile=%d pid=%d\n",
			os.Getuid(), os.Getgid(), wd, os.Getenv("GREETING"), host, lim.Cur, os.Getpid())
		fmt.Printf("app: resolv.conf=%q\n", resolv)
	case "serve":
		done := make(chan struct{})
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from the unikernel, path %s\n", r.URL.Path)
			if r.URL.Path == "/quit" {
				close(done)
			}
		})
		go func() {
			fmt.Println("app: serve:", http.ListenAndServe(":8080", nil))
			os.Exit(1)
		}()
		<-done
	}
}
`

// bootEnv is what every boot test shares: kernel, init and rootfs.
type bootEnv struct {
	dir, kernel, initBin, rootfs, digest string
	bundle                               interface{}
	writeInitrd                          func(name string, cfg spec.InitConfig, c initrd.Compression) string
}

func newBootEnv(t *testing.T) *bootEnv {
	t.Helper()
	testtool.NeedVM(t)
	b := cloudKernel(t)
	dir := t.TempDir()
	env := &bootEnv{dir: dir, kernel: b.KernelPath(), initBin: buildInit(t, dir)}
	app := buildGoProgram(t, dir, "testapp", testApp)
	env.rootfs, env.digest = writeRootfs(t, dir, app)
	env.writeInitrd = func(name string, cfg spec.InitConfig, c initrd.Compression) string {
		cfg.RootfsSuperblockDigest, cfg.RootfsType = env.digest, "squashfs"
		out := filepath.Join(dir, name)
		writeInitrd(t, out, env.initBin, cfg, b, c)
		return out
	}
	return env
}

func TestBoot(t *testing.T) {
	env := newBootEnv(t)

	t.Run("exit status", func(t *testing.T) {
		rd := env.writeInitrd("initrd-exit", spec.InitConfig{Args: []string{"/app", "exit"}, Network: spec.Network{Disabled: true}}, initrd.Zstd)
		res := bootVM(t, vmSpec{kernel: env.kernel, initrd: rd, rootfs: env.rootfs, append: "uni.debug"})
		if res.status != 3 || !strings.Contains(res.console, spec.ExecMarker+"/app\n") {
			t.Fatalf("want %q and exit status 3, got %d; console:\n%s", spec.ExecMarker+"/app", res.status, res.console)
		}
		t.Logf("boot timeline (guest ms since kernel start): %v; host: exec at %v, powered off at %v",
			res.timeline, res.execAt, res.total)
	})

	t.Run("uid cwd env", func(t *testing.T) {
		rd := env.writeInitrd("initrd-info", spec.InitConfig{
			Args: []string{"/app", "info"}, Env: []string{"GREETING=hi-there"},
			WorkingDir: "/work", UID: 1000, GID: 1001, Hostname: "unitest",
		}, initrd.Zstd)
		res := bootVM(t, vmSpec{kernel: env.kernel, initrd: rd, rootfs: env.rootfs})
		want := "app: uid=1000 gid=1001 cwd=/work GREETING=hi-there host=unitest"
		if res.status != 0 || !strings.Contains(res.console, want) {
			t.Fatalf("want %q and exit status 0, got %d; console:\n%s", want, res.status, res.console)
		}
		if strings.Contains(res.console, "nofile=1024 ") {
			t.Errorf("RLIMIT_NOFILE not raised; console:\n%s", res.console)
		}
		// QEMU's user network hands out 10.0.2.3 as its DNS server.
		if !strings.Contains(res.console, `resolv.conf="nameserver 10.0.2.3\n"`) {
			t.Errorf("resolv.conf from DHCP not in place; console:\n%s", res.console)
		}
	})

	t.Run("http through forwarded port", func(t *testing.T) {
		rd := env.writeInitrd("initrd-serve", spec.InitConfig{Args: []string{"/app", "serve"}}, initrd.Zstd)
		port := freePort(t)
		got := make(chan string, 1)
		fetch := func() {
			url := "http://127.0.0.1:" + strconv.Itoa(port)
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				resp, err := http.Get(url + "/hello")
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got <- string(body)
					if r, err := http.Get(url + "/quit"); err == nil {
						r.Body.Close()
					}
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			got <- "no answer within 60s"
		}
		res := bootVM(t, vmSpec{kernel: env.kernel, initrd: rd, rootfs: env.rootfs, hostPort: port, onExec: fetch})
		body := <-got
		if body != "hello from the unikernel, path /hello\n" {
			t.Fatalf("GET answered %q; console:\n%s", body, res.console)
		}
		if res.status != 0 {
			t.Fatalf("exit status %d after /quit; console:\n%s", res.status, res.console)
		}
	})

	t.Run("missing rootfs fails with 125", func(t *testing.T) {
		cfg := spec.InitConfig{Args: []string{"/app", "exit"}, Network: spec.Network{Disabled: true}}
		rd := env.writeInitrd("initrd-norootfs", cfg, initrd.Zstd)
		res := bootVM(t, vmSpec{kernel: env.kernel, initrd: rd})
		if res.status != InitFailureStatus || !strings.Contains(res.console, "uni: init: no block device holds the rootfs") {
			t.Fatalf("want the init's error and exit status %d, got %d; console:\n%s", InitFailureStatus, res.status, res.console)
		}
	})
}
