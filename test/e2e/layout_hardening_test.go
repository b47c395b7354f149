package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// TestLayoutHardening builds example/hello-go once, then tampers with
// copies of its layout the way a hostile image directory would, and checks
// that `uni run` refuses each before anything boots, with the safe outcome
// asserted: no port on 0.0.0.0, no file written by a QEMU command, no VM.
func TestLayoutHardening(t *testing.T) {
	needBoot(t)
	built := buildHelloGoLayout(t)

	// The untampered copy verifies: the refusals below come from the
	// tampering, not from the copy.
	if l, err := layout.Open(copyLayout(t, built)); err != nil {
		t.Fatalf("untampered copy: %v", err)
	} else if err := l.Verify(context.Background()); err != nil {
		t.Fatalf("untampered copy: %v", err)
	}

	// Two payloads: the one that breaks the option list, and the one that
	// made the unfixed uni open the port (the closing "hostfwd=tcp" takes
	// the rest of the rule that uni appended).
	for name, payload := range map[string]string{
		"breaking the option list": "tcp,hostfwd=tcp:0.0.0.0:%d-:1",
		"a well-formed extra rule": "tcp:0.0.0.0:%d-:8080,hostfwd=tcp",
	} {
		t.Run("hostfwd in a protocol opens nothing on 0.0.0.0, "+name, func(t *testing.T) {
			port := freePort(t)
			protocol := fmt.Sprintf(payload, port)
			dir := copyLayout(t, built)
			editConfig(t, dir, func(m map[string]any) {
				m["exposedPorts"] = []any{map[string]any{"port": 8080, "protocol": protocol}}
			})
			r := startUni(t, "", "run", dir)
			// While uni runs (a vulnerable one boots and keeps running),
			// nothing may answer on the port the payload names.
			deadline := time.After(60 * time.Second)
		poll:
			for {
				if c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
					c.Close()
					t.Fatalf("something listens on port %d, which only the payload names", port)
				}
				select {
				case err := <-r.done:
					r.done <- err
					break poll
				case <-deadline:
					t.Fatal("uni run did not refuse the layout within 60s")
				case <-time.After(100 * time.Millisecond):
				}
			}
			err := <-r.done
			if err == nil {
				t.Fatalf("uni run exited 0:\n%s", r.console.String())
			}
			out := r.console.String()
			want := fmt.Sprintf(`config.json: exposedPorts[0].protocol: %q is not tcp or udp`, protocol)
			if !strings.Contains(out, want) {
				t.Fatalf("output does not name the field as %q:\n%s", want, out)
			}
			if ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port)); err != nil {
				t.Fatalf("0.0.0.0:%d is taken after the refusal: %v", port, err)
			} else {
				ln.Close()
			}
			assertNoQEMU(t, dir)
		})
	}

	t.Run("a guestfwd command never runs", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "pwned")
		dir := copyLayout(t, built)
		editConfig(t, dir, func(m map[string]any) {
			m["exposedPorts"] = []any{map[string]any{"port": 8080, "protocol": "tcp,guestfwd=tcp:10.0.2.100:1234-cmd:touch " + marker}}
		})
		out, status := uniRefusal(t, "run", dir)
		if status == 0 || !strings.Contains(out, "exposedPorts[0].protocol") {
			t.Fatalf("exit %d, want a refusal naming exposedPorts[0].protocol:\n%s", status, out)
		}
		if strings.Contains(out, spec.ExecMarker) {
			t.Fatalf("the guest booted:\n%s", out)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatalf("%s exists (or cannot be checked: %v): the command ran", marker, err)
		}
		assertNoQEMU(t, dir)
	})

	t.Run("an emptied entrypoint is refused before boot", func(t *testing.T) {
		dir := copyLayout(t, built)
		editConfig(t, dir, func(m map[string]any) { m["entrypoint"] = []any{} })
		out, status := uniRefusal(t, "run", dir)
		if status == 0 || !strings.Contains(out, "config.json: entrypoint: is empty") || strings.Contains(out, spec.ExecMarker) {
			t.Fatalf("exit %d, want a refusal before boot naming entrypoint:\n%s", status, out)
		}
		assertNoQEMU(t, dir)
	})

	t.Run("a changed entrypoint is refused before boot", func(t *testing.T) {
		dir := copyLayout(t, built)
		editConfig(t, dir, func(m map[string]any) { m["entrypoint"] = []any{"/hello", "--other"} })
		out, status := uniRefusal(t, "run", dir)
		want := `initrd does not match config.json: /uni/init.json args is ["/hello"], config.json entrypoint says ["/hello","--other"]`
		if status == 0 || !strings.Contains(out, want) || strings.Contains(out, spec.ExecMarker) {
			t.Fatalf("exit %d, want a refusal before boot saying %q:\n%s", status, want, out)
		}
		assertNoQEMU(t, dir)
	})

	t.Run("EXPOSE of a huge range is not forwarded wholesale", func(t *testing.T) {
		dir := copyLayout(t, built)
		editConfig(t, dir, func(m map[string]any) {
			var ports []any
			for p := 1; p <= 65535; p++ {
				ports = append(ports, map[string]any{"port": p, "protocol": "tcp"})
			}
			m["exposedPorts"] = ports
		})
		out, status := uniRefusal(t, "run", dir)
		if status == 0 || !strings.Contains(out, "exposes 65535 ports") || !strings.Contains(out, "-p") || strings.Contains(out, spec.ExecMarker) {
			t.Fatalf("exit %d, want a refusal pointing at -p:\n%s", status, out)
		}
		assertNoQEMU(t, dir)
	})

	t.Run("a directory with only config.json is not a layout", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, filepath.Join(built, spec.ConfigFile), filepath.Join(dir, spec.ConfigFile))
		out, status := uniRefusal(t, "run", dir)
		if status == 0 || !strings.Contains(out, "not an image layout") || !strings.Contains(out, "lacks kernel, initrd, rootfs.img") {
			t.Fatalf("exit %d, want \"not an image layout\" naming the missing files:\n%s", status, out)
		}
		if got := fileList(t, dir); got != "[config.json]" {
			t.Fatalf("the directory changed: %s", got)
		}
	})

	t.Run("a flipped byte in rootfs.img is refused", func(t *testing.T) {
		dir := copyLayout(t, built)
		p := filepath.Join(dir, spec.RootfsFile)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		b := make([]byte, 1)
		off := fi.Size() / 2
		f.ReadAt(b, off)
		b[0] ^= 0x01
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out, status := uniRefusal(t, "run", dir)
		if status == 0 || !strings.Contains(out, "rootfs.img does not match config.json: sha256 is") || strings.Contains(out, spec.ExecMarker) {
			t.Fatalf("exit %d, want a refusal naming rootfs.img's digest:\n%s", status, out)
		}
		assertNoQEMU(t, dir)
	})
}

// TestLayoutMissingDisk: `uni run --boot bios` of a layout without disk.img
// writes one, but only from a layout that verifies; a tampered one is
// refused and left as it was.
func TestLayoutMissingDisk(t *testing.T) {
	needBoot(t)
	built := buildHelloGoLayout(t)

	tampered := copyLayout(t, built)
	editConfig(t, tampered, func(m map[string]any) { m["entrypoint"] = []any{"/hello", "x"} })
	out, status := uniRefusal(t, "run", "--boot", "bios", tampered)
	if status == 0 || !strings.Contains(out, "does not match config.json") {
		t.Fatalf("tampered layout, bios boot: exit %d\n%s", status, out)
	}
	if _, err := os.Stat(filepath.Join(tampered, spec.DiskFile)); !os.IsNotExist(err) {
		t.Fatalf("a disk.img was written into the tampered layout (%v)", err)
	}

	dir := copyLayout(t, built)
	port := freePort(t)
	r := startUni(t, "", "run", "--boot", "bios", "-p", fmt.Sprintf("%d:8080", port), dir)
	if body := r.httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 3*time.Minute); body != "Hello from Go\n" {
		t.Fatalf("answer %q", body)
	}
	r.stop(t)
	assertNoQEMU(t, dir)
	l, err := layout.Open(dir)
	if err != nil || !l.HasDisk() {
		t.Fatalf("after a bios boot the layout has no disk.img: %v (%s)", err, fileList(t, dir))
	}
}

// uniRefusal runs uni, expecting it to stop at once; a uni that boots the
// image instead is stopped after a minute and reported.
func uniRefusal(t *testing.T, args ...string) (string, int) {
	t.Helper()
	r := startUni(t, "", args...)
	select {
	case err := <-r.done:
		r.done <- err
	case <-time.After(60 * time.Second):
		r.stop(t)
		t.Fatalf("uni %s did not refuse within 60s; it ran:\n%s", strings.Join(args, " "), r.console.String())
	}
	return r.console.String(), r.cmd.ProcessState.ExitCode()
}

// buildHelloGoLayout builds example/hello-go (static, FROM scratch) as
// TestHelloGo does and returns the layout's directory.
func buildHelloGoLayout(t *testing.T) string {
	t.Helper()
	ctx := helloGoContext(t, t.TempDir())
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	return out
}

// copyLayout copies a layout's files into a fresh directory.
func copyLayout(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "layout")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// editConfig rewrites config.json of dir through edit, as a generic JSON
// object, so every other field stays as built.
func editConfig(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, spec.ConfigFile)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
