package sbom

import (
	"sort"
	"strconv"
	"strings"

	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Row is one origin of a document's files: the package they are
// GENERATED_FROM (a base image's layer, "host", "build context",
// "Unifile", "uni"; under BuildKit the base image, "base stage", "last
// stage"), how many files and how many bytes.
type Row struct {
	Origin string
	Files  int
	Bytes  int64
}

// Summarize counts the files of doc by origin, largest first. A file with
// no GENERATED_FROM relationship counts as "unknown"; a null file of a
// hostile document, not at all.
func Summarize(doc *spdx.Document) []Row {
	names := map[common.ElementID]string{}
	for _, p := range doc.Packages {
		if p != nil {
			names[p.PackageSPDXIdentifier] = p.PackageName
		}
	}
	from := map[common.ElementID]string{}
	for _, r := range doc.Relationships {
		if r != nil && r.Relationship == common.TypeRelationshipGeneratedFrom && r.RefA.DocumentRefID == "" {
			from[r.RefA.ElementRefID] = names[r.RefB.ElementRefID]
		}
	}
	rows := map[string]*Row{}
	for _, f := range doc.Files {
		if f == nil {
			continue
		}
		o := from[f.FileSPDXIdentifier]
		if o == "" {
			o = "unknown"
		}
		r := rows[o]
		if r == nil {
			r = &Row{Origin: o}
			rows[o] = r
		}
		r.Files++
		r.Bytes += commentSize(f.FileComment)
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Origin < out[j].Origin
	})
	return out
}

// commentSize reads the "size: N" line Comment writes (0 without one).
func commentSize(c string) int64 {
	for _, line := range strings.Split(c, "\n") {
		if v, ok := strings.CutPrefix(line, "size: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n >= 0 {
				return n
			}
		}
	}
	return 0
}
