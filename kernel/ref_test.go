package kernel

import "testing"

// TestRefRecordsArchOnlyWhenNotAmd64: an image records its bundle's
// architecture in config.json's kernel.arch, except amd64 (the default),
// whose config.json stays byte for byte what earlier builds wrote.
func TestRefRecordsArchOnlyWhenNotAmd64(t *testing.T) {
	for arch, want := range map[string]string{"amd64": "", "arm64": "arm64", "i386": "i386"} {
		b := &Bundle{Desc: Descriptor{Release: "6.1.0", Digest: "sha256:x", Arch: arch}}
		if got := b.Ref("linux").Arch; got != want {
			t.Errorf("a %s bundle: kernel.arch %q, want %q", arch, got, want)
		}
	}
}
