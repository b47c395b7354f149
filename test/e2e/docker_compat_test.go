package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerRuntimeDefaults: what Docker gives a container, the guest
// gives the app: HOME from the passwd entry (or / for an unknown user),
// gid 0 for a numeric USER without a group, a hostname that the app can
// resolve through /etc/hosts.
func TestDockerRuntimeDefaults(t *testing.T) {
	needBoot(t)
	ctx := t.TempDir()
	buildStatic(t, `package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	host, err := os.Hostname()
	addrs, lerr := net.LookupHost(host)
	fmt.Printf("home=%s uid=%d gid=%d host=%s hosterr=%v addrs=%v lookuperr=%v\n",
		os.Getenv("HOME"), os.Getuid(), os.Getgid(), host, err, addrs, lerr)
}
`, filepath.Join(ctx, "defaults"))
	writeFiles(t, ctx, map[string]string{"Unifile": `FROM scratch
COPY defaults /bin/defaults
USER 1000
MEMORY 96M
ENTRYPOINT ["/bin/defaults"]
`})
	out := filepath.Join(t.TempDir(), "image")
	mustUni(t, ctx, "build", "-o", out, ".")
	console, status := uni(t, "", "run", out)
	if status != 0 {
		t.Fatalf("uni run exited %d\n%s", status, console)
	}
	for _, want := range []string{"home=/ ", "uid=1000 gid=0 ", "host=uni-", "hosterr=<nil>", "addrs=[127.0.1.1]", "lookuperr=<nil>"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
}

// TestMountPointsRefused: files put where the init mounts a fresh
// filesystem at boot would be invisible in the guest; the build refuses
// them and names the line.
func TestMountPointsRefused(t *testing.T) {
	for name, tc := range map[string]struct{ unifile, want string }{
		"COPY into /tmp":  {"FROM scratch\nCOPY data /tmp/data\nENTRYPOINT [\"/tmp/data\"]\n", "Unifile:2: /tmp/data: /tmp is a mount point"},
		"COPY into /run":  {"FROM scratch\nCOPY data /bin/app\nCOPY data /run/x/\nENTRYPOINT [\"/bin/app\"]\n", "Unifile:3: /run/x"},
		"INCLUDE /tmp":    {"FROM scratch\nCOPY data /bin/app\nINCLUDE /tmp/cache\nENTRYPOINT [\"/bin/app\"]\n", "Unifile:3: INCLUDE /tmp/cache: /tmp is a mount point"},
		"WORKDIR in /tmp": {"FROM scratch\nCOPY data /bin/app\nWORKDIR /tmp/w\nENTRYPOINT [\"/bin/app\"]\n", "Unifile:3: WORKDIR /tmp/w"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.TempDir()
			writeFiles(t, ctx, map[string]string{"Unifile": tc.unifile, "data": "x"})
			out := filepath.Join(t.TempDir(), "image")
			msg, status := uni(t, ctx, "build", "-o", out, ".")
			if status == 0 || !strings.Contains(msg, tc.want) {
				t.Fatalf("exit %d, want an error containing %q:\n%s", status, tc.want, msg)
			}
			if fileList(t, filepath.Dir(out)) != "[]" {
				t.Errorf("a refused build left files: %s", fileList(t, filepath.Dir(out)))
			}
		})
	}
}
