package initbin

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// TestEmbeddedInitIsFresh rebuilds ../../init exactly as `make init` does
// and compares it with the committed binary.
func TestEmbeddedInitIsFresh(t *testing.T) {
	if want := strings.TrimSpace(GoVersion()); runtime.Version() != want {
		testtool.Missing(t, "the committed init was built with %s and this is %s: its bytes can only be compared with the same Go release", want, runtime.Version())
	}
	out := filepath.Join(t.TempDir(), "uni-init")
	cmd := exec.Command("go", BuildArgs(out, "../../init")...)
	cmd.Env = append(os.Environ(), BuildEnv...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the init: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, Binary()) {
		t.Fatalf("internal/initbin/uni-init (%d bytes) differs from a fresh build of init/ (%d bytes): run `make init` and commit it", len(Binary()), len(fresh))
	}
}
