package sbom

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// Subject reads back the rootfs digest Build wrote, and refuses a document
// whose namespace and described package disagree, or that describes
// something else or several things.
func TestSubject(t *testing.T) {
	tree, _ := testTree(t)
	in := testInput(tree)
	raw := writeDoc(t, in)
	got, err := Subject(bytes.NewReader(raw))
	if err != nil || got != in.Rootfs.Digest {
		t.Fatalf("Subject = %q, %v; want %s", got, err, in.Rootfs.Digest)
	}
	f64, e64 := strings.Repeat("f", 64), strings.Repeat("e", 64)
	for _, c := range []struct {
		name, old, new string
		noSubject      bool // the error wraps ErrNoSubject
	}{
		{"namespace of another rootfs", NamespacePrefix + f64, NamespacePrefix + e64, true},
		{"namespace not ours", NamespacePrefix + f64, "https://example.com/spdx/" + f64, true},
		{"namespace not a digest", NamespacePrefix + f64, NamespacePrefix + strings.ToUpper(f64), true},
		{"package of another rootfs", `"checksumValue": "` + f64 + `"`, `"checksumValue": "` + e64 + `"`, true},
		{"describes the kernel", `"relatedSpdxElement": "SPDXRef-Package-app",
      "relationshipType": "DESCRIBES"`, `"relatedSpdxElement": "SPDXRef-Package-kernel",
      "relationshipType": "DESCRIBES"`, true},
		{"describes nothing", `"relationshipType": "DESCRIBES"`, `"relationshipType": "OTHER"`, true},
		{"describes a package it lacks", `"relatedSpdxElement": "SPDXRef-Package-app",
      "relationshipType": "DESCRIBES"`, `"relatedSpdxElement": "SPDXRef-Package-gone",
      "relationshipType": "DESCRIBES"`, true},
		{"two subjects", `"spdxVersion": "SPDX-2.3",`, `"spdxVersion": "SPDX-2.3", "documentDescribes": ["SPDXRef-Package-kernel"],`, true},
		{"SPDX 2.2", `"spdxVersion": "SPDX-2.3"`, `"spdxVersion": "SPDX-2.2"`, false},
		{"not the document", `"SPDXID": "SPDXRef-DOCUMENT"`, `"SPDXID": "SPDXRef-Other"`, false},
		{"data after it", "\n}\n", "\n}\n{}", false},
		{"not JSON", `"spdxVersion"`, `spdxVersion`, false},
	} {
		if !bytes.Contains(raw, []byte(c.old)) {
			t.Fatalf("%s: the document holds no %q", c.name, c.old)
		}
		bad := bytes.Replace(raw, []byte(c.old), []byte(c.new), 1)
		_, err := Subject(bytes.NewReader(bad))
		if err == nil || errors.Is(err, ErrNoSubject) != c.noSubject {
			t.Errorf("%s: %v", c.name, err)
		}
	}

	// documentDescribes alone names the subject as well as DESCRIBES does.
	alt := bytes.Replace(raw, []byte(`"relationshipType": "DESCRIBES"`), []byte(`"relationshipType": "OTHER"`), 1)
	alt = bytes.Replace(alt, []byte(`"spdxVersion": "SPDX-2.3",`), []byte(`"spdxVersion": "SPDX-2.3", "documentDescribes": ["SPDXRef-Package-app"],`), 1)
	if got, err := Subject(bytes.NewReader(alt)); err != nil || got != in.Rootfs.Digest {
		t.Errorf("documentDescribes: %q, %v", got, err)
	}
	if _, err := subject(bytes.NewReader(raw), int64(len(raw)-1)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a document over the bound: %v", err)
	}
	if got, err := subject(bytes.NewReader(raw), int64(len(raw))); err != nil || got != in.Rootfs.Digest {
		t.Errorf("a document of exactly the bound: %q, %v", got, err)
	}
}

// FuzzSubject: whatever a sbom.spdx.json holds, Subject returns an error
// or a sha256 digest that the document's namespace ends with; never a panic.
func FuzzSubject(f *testing.F) {
	tree := rootfs.NewTree()
	tree.Add(rootfs.Entry{Path: "/bin/app", Mode: 0o755, Data: []byte("app"), Origin: rootfs.Origin{Kind: rootfs.OriginStageAdded}})
	in := testInput(tree)
	doc, err := Build(f.Context(), in)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, doc); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","documentNamespace":"` + NamespacePrefix + strings.Repeat("0", 64) + `","documentDescribes":["SPDXRef-A"],"packages":[{"SPDXID":"SPDXRef-A","checksums":[{"algorithm":"SHA256","checksumValue":"` + strings.Repeat("0", 64) + `"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Subject(bytes.NewReader(data))
		if err != nil {
			return
		}
		hex, ok := strings.CutPrefix(got, "sha256:")
		if !ok || !isSHA256Hex(hex) || !bytes.Contains(data, []byte(hex)) {
			t.Fatalf("Subject = %q", got)
		}
	})
}

// BenchmarkSubject reads the subject of a document of 10000 files (about
// 7 MB, a large runtime's root), against tools-golang's full reader of
// the same bytes in the same run: Subject runs on every layout.Verify.
func BenchmarkSubject(b *testing.B) {
	tree := rootfs.NewTree()
	for i := range 10000 {
		p := "/usr/lib/pkg" + strconv.Itoa(i/100) + "/file" + strconv.Itoa(i) + ".py"
		if err := tree.Add(rootfs.Entry{Path: p, Mode: 0o644, Data: []byte(p), Origin: rootfs.Origin{Kind: rootfs.OriginStage, Image: "reg/python:3", ImageDigest: "sha256:" + strings.Repeat("a", 64)}}); err != nil {
			b.Fatal(err)
		}
	}
	in := testInput(tree)
	doc, err := Build(b.Context(), in)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, doc); err != nil {
		b.Fatal(err)
	}
	raw := buf.Bytes()
	b.Run("Subject", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if got, err := Subject(bytes.NewReader(raw)); err != nil || got != in.Rootfs.Digest {
				b.Fatal(got, err)
			}
		}
	})
	b.Run("tools-golang", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := Read(bytes.NewReader(raw)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
