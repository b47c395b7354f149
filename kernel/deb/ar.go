// Package deb reads Debian binary packages (.deb): the ar container, the
// control fields, and a filtered, confined extraction of the data archive.
// It needs no dpkg, so it works on any host.
package deb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// arReader walks the members of an ar archive, one at a time, streaming.
type arReader struct {
	r       *bufio.Reader
	remain  int64 // bytes of the current member not yet read
	padding int64 // 0 or 1: ar pads odd-sized members to an even length
}

// arMember is one member of an ar archive.
type arMember struct {
	Name string
	Size int64
}

func newArReader(r io.Reader) (*arReader, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("not an ar archive: %w", err)
	}
	if string(magic) != arMagic {
		return nil, errors.New("not an ar archive: bad magic")
	}
	return &arReader{r: br}, nil
}

// Next skips what is left of the current member and returns the next
// member's header; io.EOF at the end of the archive.
func (a *arReader) Next() (*arMember, error) {
	if _, err := io.CopyN(io.Discard, a.r, a.remain+a.padding); err != nil {
		return nil, fmt.Errorf("ar: truncated member: %w", err)
	}
	a.remain, a.padding = 0, 0
	hdr := make([]byte, arHeaderSize)
	n, err := io.ReadFull(a.r, hdr)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("ar: truncated header (%d bytes): %w", n, err)
	}
	if string(hdr[58:60]) != "`\n" {
		return nil, errors.New("ar: bad header terminator")
	}
	// GNU ar ends names with '/'; BSD-style long names (#1/) do not occur in .debs.
	name := strings.TrimRight(string(hdr[0:16]), " ")
	name = strings.TrimSuffix(name, "/")
	if name == "" || strings.HasPrefix(name, "#1/") {
		return nil, fmt.Errorf("ar: unsupported member name %q", name)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("ar: member %q: bad size %q", name, strings.TrimSpace(string(hdr[48:58])))
	}
	a.remain = size
	a.padding = size % 2
	return &arMember{Name: name, Size: size}, nil
}

// Read reads from the current member.
func (a *arReader) Read(p []byte) (int, error) {
	if a.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.remain {
		p = p[:a.remain]
	}
	n, err := a.r.Read(p)
	a.remain -= int64(n)
	if err == io.EOF && a.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
