package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func TestCheckHostname(t *testing.T) {
	for _, h := range []string{"a", "app", "my-app.example", "x1", strings.Repeat("a", 63), "A.B-C"} {
		if err := spec.CheckHostname(h); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	for _, h := range []string{"", "-a", "a-", "a..b", ".a", "a_b", "a b", "a,b", strings.Repeat("a", 64) + ".b", strings.Repeat("a", 64), "é"} {
		if err := spec.CheckHostname(h); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
}

func TestValidateReportsAFieldError(t *testing.T) {
	c := spec.ImageConfig{SchemaVersion: 1}
	var fe *spec.FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "entrypoint" {
		t.Fatalf("no entrypoint: %v", err)
	}
}

func TestInitConfigCarriesWhatTheInitRuns(t *testing.T) {
	c := spec.ImageConfig{Entrypoint: []string{"/a", "b"}, Env: []string{"A=1"}, WorkingDir: "/w", Hostname: "h",
		User:   &spec.User{UID: 5, GID: 6},
		Rootfs: spec.RootfsRef{Type: "squashfs", SuperblockDigest: "sha256:x"}}
	ic := c.InitConfig()
	if strings.Join(ic.Args, " ") != "/a b" || ic.Env[0] != "A=1" || ic.WorkingDir != "/w" || ic.Hostname != "h" ||
		ic.UID != 5 || ic.GID != 6 || ic.RootfsSuperblockDigest != "sha256:x" || ic.RootfsType != "squashfs" {
		t.Fatalf("%+v", ic)
	}
}
