package closure

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are the crafted objects the corpus in testdata/fuzz starts from.
func fuzzSeeds() map[string][]byte {
	exe := arm64(elf.ET_DYN)
	exe.interp, exe.needed, exe.rpath = "/lib/ld-linux-aarch64.so.1", []string{"libfoo.so.1", "libc.so.6"}, "$ORIGIN/../lib"
	lib32 := fakeELF{class: elf.ELFCLASS32, data: elf.ELFDATA2MSB, machine: elf.EM_MIPS, typ: elf.ET_DYN, soname: "libx.so.2", runpath: "/a:/b", needed: []string{"libc.so.6"}}
	static := amd64(elf.ET_EXEC)
	static.static = true
	return map[string][]byte{"arm64-exe": exe.bytes(), "mips32be-lib": lib32.bytes(), "static": static.bytes()}
}

// TestFuzzSeedsCommitted checks that testdata/fuzz/FuzzParseELF holds the
// seeds fuzzSeeds makes; with UPDATE_FUZZ_SEEDS=1 it rewrites them.
func TestFuzzSeedsCommitted(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseELF")
	update := os.Getenv("UPDATE_FUZZ_SEEDS") != ""
	if update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range fuzzSeeds() {
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b))
		p := filepath.Join(dir, name)
		if update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): run with UPDATE_FUZZ_SEEDS=1", p, err)
		}
	}
}

func FuzzParseELF(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := decodeELF(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(info.Interp) > maxInterpLen {
			t.Fatalf("interpreter of %d bytes", len(info.Interp))
		}
		if len(info.Runpath) > 0 && len(info.Rpath) > 0 {
			t.Fatalf("both RPATH %v and RUNPATH %v kept", info.Rpath, info.Runpath)
		}
		for _, d := range append(info.Rpath, info.Runpath...) {
			if d == "" {
				t.Fatal("empty search directory")
			}
		}
	})
}

func TestParseCraftedELF(t *testing.T) {
	info, err := parseELF(bytes.NewReader(fuzzSeeds()["mips32be-lib"]))
	if err != nil {
		t.Fatal(err)
	}
	if info.Class != elf.ELFCLASS32 || info.Data != elf.ELFDATA2MSB || info.Soname != "libx.so.2" ||
		fmt.Sprint(info.Runpath) != "[/a /b]" || fmt.Sprint(info.Needed) != "[libc.so.6]" {
		t.Fatalf("got %+v", info)
	}
	if _, err := parseELF(bytes.NewReader([]byte("\x7fELF\x02\x01\x01"))); err == nil {
		t.Fatal("a truncated header parsed")
	}
}
