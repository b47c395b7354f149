package rootfs

import (
	"io/fs"
	"testing"
)

func TestUnixPermRoundTrip(t *testing.T) {
	for u := uint32(0); u < 0o10000; u++ {
		if got := UnixPerm(PermFromUnix(u)); got != u {
			t.Fatalf("%o → %v → %o", u, PermFromUnix(u), got)
		}
	}
	if got := UnixPerm(fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o755); got != 0o3755 {
		t.Errorf("got %o, want 3755", got)
	}
}
