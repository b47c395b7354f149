package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// readAll walks an archive and returns name → content (symlink targets
// included) in order.
func readAll(data []byte) (names []string, content map[string]string, err error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	content = map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			return names, content, nil
		}
		if err != nil {
			return names, content, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return names, content, err
		}
		names = append(names, h.Name)
		content[h.Name] = string(b)
	}
}

func TestReaderReadsWhatWriteWrote(t *testing.T) {
	tr := sampleTree(t)
	var want []string
	tr.Walk(func(e *rootfs.Entry) error {
		if e.Path != "/" {
			want = append(want, strings.TrimPrefix(e.Path, "/"))
		}
		return nil
	})
	for _, c := range []Compression{Zstd, Gzip, None} {
		t.Run(c.String(), func(t *testing.T) {
			data := writeArchive(t, tr, WithCompression(c), WithModTime(1234))
			names, content, err := readAll(data)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, want) {
				t.Fatalf("names %q, want %q", names, want)
			}
			if content["uni/init.json"] != `{"args":["/app"]}` || content["lib/link"] != "modules/6.1" || len(content["lib/modules/6.1/kernel/big.ko"]) != 80003 {
				t.Fatalf("contents differ from the tree's")
			}
			got, err := ReadFile(bytes.NewReader(data), "/uni/init.json", 1<<20)
			if err != nil || string(got) != `{"args":["/app"]}` {
				t.Fatalf("ReadFile: %q, %v", got, err)
			}
			if _, err := ReadFile(bytes.NewReader(data), "/uni/init.json", 4); err == nil {
				t.Fatal("ReadFile ignored its size limit")
			}
			if _, err := ReadFile(bytes.NewReader(data), "/uni/missing", 1<<20); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
			}
		})
	}
}

// GNU cpio is the oracle for the format: what it writes (with its
// 512-byte block padding after the trailer) reads back the same.
func TestReaderReadsGNUCpio(t *testing.T) {
	testtool.Need(t, "cpio")
	dir := t.TempDir()
	files := map[string]string{"init": "#!x\n", "uni/init.json": `{"args":["/a"]}`, "odd": "abcde"}
	for name, body := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("init\nodd\nuni\nuni/init.json\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	names, content, err := readAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"init", "odd", "uni", "uni/init.json"}) {
		t.Fatalf("names %q", names)
	}
	for name, body := range files {
		if content[name] != body {
			t.Errorf("%s: %q, want %q", name, content[name], body)
		}
	}
}

// entry is one raw newc record for hostile archives.
type entry struct {
	name  string
	mode  uint32
	nlink uint32
	ino   uint32
	body  string
}

func rawCpio(entries ...entry) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for _, e := range append(entries, entry{name: trailerName, nlink: 1}) {
		nlink := e.nlink
		if nlink == 0 {
			nlink = 1
		}
		fmt.Fprintf(&b, "%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			newcMagic, e.ino, e.mode, 0, 0, nlink, 0, len(e.body), 0, 0, 0, 0, len(e.name)+1, 0)
		b.WriteString(e.name + "\x00")
		pad()
		b.WriteString(e.body)
		pad()
	}
	return b.Bytes()
}

func zstdOf(t testing.TB, data []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(data, nil)
}

const reg = modeRegular | 0o644

func TestReaderRefusesWhatTheKernelWouldUnpackDifferently(t *testing.T) {
	good := rawCpio(entry{name: "uni", mode: modeDir | 0o755}, entry{name: "uni/init.json", mode: reg, body: "good"})
	if _, err := ReadFile(bytes.NewReader(good), "/uni/init.json", 100); err != nil {
		t.Fatalf("the good archive: %v", err)
	}
	evil := rawCpio(entry{name: "uni/init.json", mode: reg, body: "evil"})
	cases := map[string][]byte{
		"a second archive after the trailer":       append(slices.Clone(good), evil...),
		"a second archive after the zstd stream":   append(zstdOf(t, good), evil...),
		"a second zstd frame with another archive": append(zstdOf(t, good), zstdOf(t, evil)...),
		"the same name twice": rawCpio(entry{name: "uni/init.json", mode: reg, body: "good"},
			entry{name: "uni/init.json", mode: reg, body: "evil"}),
		"a hard link joining another file's content": rawCpio(
			entry{name: "uni/init.json", mode: reg, nlink: 2, ino: 7, body: "good"},
			entry{name: "x", mode: reg, nlink: 2, ino: 7, body: "evil"}),
		"an entry below a symlink": rawCpio(entry{name: "x", mode: modeSymlink | 0o777, body: "uni"},
			entry{name: "uni/init.json", mode: reg, body: "good"}, entry{name: "x/init.json", mode: reg, body: "evil"}),
		"a symlink over a directory of an earlier entry": rawCpio(entry{name: "uni/init.json", mode: reg, body: "good"},
			entry{name: "uni", mode: modeSymlink | 0o777, body: "elsewhere"}),
		"an absolute name":    rawCpio(entry{name: "/uni/init.json", mode: reg, body: "evil"}),
		"a dot name":          rawCpio(entry{name: "./uni/init.json", mode: reg, body: "evil"}),
		"a double slash":      rawCpio(entry{name: "uni//init.json", mode: reg, body: "evil"}),
		"a dot-dot name":      rawCpio(entry{name: "a/../uni/init.json", mode: reg, body: "evil"}),
		"content on a dir":    rawCpio(entry{name: "uni", mode: modeDir | 0o755, body: "data"}),
		"an unknown type":     rawCpio(entry{name: "x", mode: 0o170644}),
		"no trailer":          good[:len(good)-124],
		"a crc archive":       bytes.Replace(good, []byte("070701"), []byte("070702"), 1),
		"a non-hex header":    append([]byte("070701zzzzzzzz"), good[14:]...),
		"garbage after zeros": append(append(slices.Clone(good), 0, 0, 0, 0), 'x'),
		"not an archive":      []byte("hello world, not a cpio"),
		"a name without NUL":  bytes.Replace(good, []byte("uni\x00"), []byte("unix"), 1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ReadFile(bytes.NewReader(data), "/uni/init.json", 100)
			if err == nil {
				t.Fatalf("accepted; read %q", got)
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, zstd.ErrMagicMismatch) {
				t.Logf("error (not ErrFormat): %v", err)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add(rawCpio(entry{name: "uni", mode: modeDir | 0o755}, entry{name: "uni/init.json", mode: reg, body: `{"args":["/a"]}`}))
	f.Add(zstdOf(f, rawCpio(entry{name: "init", mode: modeRegular | 0o755, body: "x"})))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, content, err := readAll(data)
		seen := map[string]bool{}
		for _, n := range names {
			if !fs.ValidPath(n) || n == "." || seen[n] {
				t.Fatalf("entry %q passed the reader: not clean or twice", n)
			}
			seen[n] = true
		}
		got, ferr := ReadFile(bytes.NewReader(data), "uni/init.json", 1<<20)
		if ferr == nil {
			if err != nil {
				t.Fatalf("ReadFile accepted an archive that a walk refuses: %v", err)
			}
			if string(got) != content["uni/init.json"] {
				t.Fatalf("ReadFile gave %q, the walk %q", got, content["uni/init.json"])
			}
		}
	})
}
