package modinfo

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse: any section parses, and names come out in the kernel's spelling.
func FuzzParse(f *testing.F) {
	f.Add([]byte("name=virtio-blk\x00depends=virtio,virtio_ring\x00alias=virtio:d00000002v*\x00"))
	f.Add([]byte("depends=,,a-b,\x00=\x00name\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info := Parse(data)
		if strings.Contains(info.Name, "-") {
			t.Errorf("name %q keeps a '-'", info.Name)
		}
		for _, d := range info.Depends {
			if d == "" || strings.Contains(d, "-") || strings.Contains(d, ",") {
				t.Errorf("bad dependency %q", d)
			}
		}
	})
}

// FuzzReadELF: no input makes the ELF reader panic.
func FuzzReadELF(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Add([]byte("not elf"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadELF(bytes.NewReader(data))
	})
}
