package sbom

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// MaxBytes bounds a sbom.spdx.json that is read: a layout's or a
// registry's. A document costs about a kilobyte per file of rootfs.img.
const MaxBytes = 256 << 20

// ErrNoSubject is wrapped by Subject's errors for a document that does not
// name the one rootfs.img it describes the way Build writes it.
var ErrNoSubject = errors.New("names no rootfs.img as its subject")

// subjectDoc holds the few fields of an SPDX 2.3 JSON document that name
// what it describes; encoding/json skips the rest (the files) unread.
type subjectDoc struct {
	SPDXVersion       string   `json:"spdxVersion"`
	SPDXID            string   `json:"SPDXID"`
	DocumentNamespace string   `json:"documentNamespace"`
	DocumentDescribes []string `json:"documentDescribes"`
	Packages          []struct {
		SPDXID    string `json:"SPDXID"`
		Checksums []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
	} `json:"packages"`
	Relationships []struct {
		A    string `json:"spdxElementId"`
		B    string `json:"relatedSpdxElement"`
		Type string `json:"relationshipType"`
	} `json:"relationships"`
}

// Subject reads the digest ("sha256:…") of the rootfs.img a document
// describes. An SBOM is a description of an image, not one of its files:
// config.json does not record it, it names the image. Two fields must agree
// on it: the namespace, NamespacePrefix and the hex digest, and the SHA256
// of the one package the document DESCRIBES. Subject reads at most MaxBytes
// and decodes only those fields (about 4 times faster than tools-golang's
// reader: BenchmarkSubject), so checking a layout's SBOM costs a parse, not
// a hash of rootfs.img: comparing the result with config.json's
// rootfs.digest (which Verify checks against the file) ties the document
// to the image.
func Subject(r io.Reader) (string, error) { return subject(r, MaxBytes) }

func subject(r io.Reader, max int64) (string, error) {
	// The decoder would hold the whole document too, and scan it twice.
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return "", err
	}
	if int64(len(data)) > max {
		return "", fmt.Errorf("more than %d bytes", max)
	}
	var d subjectDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf("not SPDX JSON: %w", err)
	}
	if d.SPDXVersion != spdx.Version {
		return "", fmt.Errorf("spdxVersion %q, want %s", d.SPDXVersion, spdx.Version)
	}
	if d.SPDXID != "SPDXRef-DOCUMENT" {
		return "", fmt.Errorf("SPDXID %q, want SPDXRef-DOCUMENT", d.SPDXID)
	}
	hex, ok := strings.CutPrefix(d.DocumentNamespace, NamespacePrefix)
	if !ok || !isSHA256Hex(hex) {
		return "", fmt.Errorf("%w: documentNamespace %q is not %s<sha256 of rootfs.img>", ErrNoSubject, d.DocumentNamespace, NamespacePrefix)
	}

	// What the document describes: documentDescribes, DESCRIBES from the
	// document, DESCRIBED_BY towards it (tools-golang's reader takes all
	// three for the same thing).
	described := map[string]bool{}
	for _, id := range d.DocumentDescribes {
		described[id] = true
	}
	for _, r := range d.Relationships {
		switch {
		case r.Type == "DESCRIBES" && r.A == d.SPDXID:
			described[r.B] = true
		case r.Type == "DESCRIBED_BY" && r.B == d.SPDXID:
			described[r.A] = true
		}
	}
	if len(described) != 1 {
		return "", fmt.Errorf("%w: it describes %d elements, want 1 (the root filesystem)", ErrNoSubject, len(described))
	}
	var subject string
	for id := range described {
		subject = id
	}
	found := false
	for _, p := range d.Packages {
		if p.SPDXID != subject {
			continue
		}
		if found {
			return "", fmt.Errorf("%w: package %q appears twice", ErrNoSubject, subject)
		}
		found = true
		var sums []string
		for _, c := range p.Checksums {
			if c.Algorithm == "SHA256" {
				sums = append(sums, c.Value)
			}
		}
		if len(sums) != 1 || sums[0] != hex {
			return "", fmt.Errorf("%w: package %q carries SHA256 %q, its namespace says %s", ErrNoSubject, subject, sums, hex)
		}
	}
	if !found {
		return "", fmt.Errorf("%w: it describes %q, which is no package of it", ErrNoSubject, subject)
	}
	return "sha256:" + hex, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
