package sbom

import (
	"bytes"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// FuzzRead: whatever a sbom.spdx.json holds, reading and summarizing it
// returns an error or rows, never a panic, and counts every file once.
func FuzzRead(f *testing.F) {
	tree := rootfs.NewTree()
	tree.Add(rootfs.Entry{Path: "/bin/app", Mode: 0o755, Data: []byte("app"), Origin: rootfs.Origin{Kind: rootfs.OriginContext, Path: "app"}})
	doc, err := Build(f.Context(), Input{Root: tree, Name: "app"})
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, doc); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"spdxVersion":"SPDX-2.3","files":[{"fileName":"./x","SPDXID":"SPDXRef-F","comment":"size: -1"}]}`))
	f.Add([]byte(`{"spdxVersion":"SPDX-2.2"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		n, files := 0, 0
		for _, f := range doc.Files {
			if f != nil {
				files++
			}
		}
		for _, r := range Summarize(doc) {
			if r.Bytes < 0 {
				t.Fatalf("negative bytes: %+v", r)
			}
			n += r.Files
		}
		if n != files {
			t.Fatalf("summary counts %d files, the document has %d", n, files)
		}
	})
}
