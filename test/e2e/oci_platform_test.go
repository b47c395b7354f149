package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/uniforge/packer-plugin-unikernel/layout"
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// TestOCIMultiPlatform: uni push of a layout for arm64 to the tag of an
// amd64 one makes an index of both, which the real oras shows; uni pull
// --platform takes each; pushing either again leaves the index as it is.
// The arm64 layout is the amd64 build with kernel.arch set in config.json
// (the initrd's init config does not name the architecture, so it passes
// Verify as it is).
func TestOCIMultiPlatform(t *testing.T) {
	reg := startOCIRegistry(t)
	amd := buildHelloGo(t, "")
	arm := filepath.Join(t.TempDir(), "arm64")
	if err := os.Mkdir(arm, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(layout.Required, spec.SBOMFile) {
		if err := os.WriteFile(filepath.Join(arm, n), hostFile(t, filepath.Join(amd, n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg spec.ImageConfig
	if err := json.Unmarshal(hostFile(t, filepath.Join(amd, spec.ConfigFile)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Kernel.Arch != "" || bytes.Contains(hostFile(t, filepath.Join(amd, spec.ConfigFile)), []byte(`"arch"`)) {
		t.Fatalf("an amd64 build's config.json names an arch: %+v", cfg.Kernel)
	}
	cfg.Kernel.Arch = "arm64"
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(arm, spec.ConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}

	ref := reg.addr + "/apps/multi:1"
	mustUni(t, "", "push", amd, ref)
	pushed := mustUni(t, "", "push", arm, ref)
	var idx v1.IndexManifest
	fetched := oras(t, "manifest", "fetch", "--plain-http", ref)
	if err := json.Unmarshal([]byte(fetched), &idx); err != nil {
		t.Fatalf("oras manifest fetch: %v\n%s", err, fetched)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].Platform.String() != "linux/amd64" || idx.Manifests[1].Platform.String() != "linux/arm64" {
		t.Fatalf("the index oras fetches:\n%s", fetched)
	}
	digest := strings.TrimSpace(oras(t, "resolve", "--plain-http", ref))
	if !strings.Contains(pushed, ref+"@"+digest) {
		t.Errorf("uni push printed %q; the tag names %s", pushed, digest)
	}

	for _, c := range []struct{ platform, src string }{{"linux/amd64", amd}, {"linux/arm64", arm}} {
		d := filepath.Join(t.TempDir(), "pulled")
		mustUni(t, "", "pull", "--platform", c.platform, "-o", d, ref)
		for _, n := range append(layout.Required, spec.SBOMFile) {
			if !bytes.Equal(hostFile(t, filepath.Join(c.src, n)), hostFile(t, filepath.Join(d, n))) {
				t.Errorf("uni pull --platform %s: %s is not the pushed one", c.platform, n)
			}
		}
	}

	for _, src := range []string{arm, amd} {
		mustUni(t, "", "push", src, ref)
		if again := strings.TrimSpace(oras(t, "resolve", "--plain-http", ref)); again != digest {
			t.Errorf("pushing %s again moved the tag from %s to %s", filepath.Base(src), digest, again)
		}
	}
}
