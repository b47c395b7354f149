package initrd

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Limits of the reader: what Write produces stays far below them, and a
// hostile initrd cannot make the reader use more.
const (
	maxName = 4096 // PATH_MAX
	// MaxUnpackedBytes bounds the decompressed archive (a zstd bomb).
	MaxUnpackedBytes = 4 << 30
	maxZstdWindow    = 64 << 20
)

// ErrFormat is wrapped by every error about an archive that is not one Write
// would write.
var ErrFormat = errors.New("not an initrd of ours")

// Header is one entry of a newc cpio archive.
type Header struct {
	Name         string // as stored: relative, clean ("uni/init.json")
	Mode         uint32 // Unix st_mode, type bits included
	UID, GID     uint32
	Nlink        uint32
	Mtime        uint32
	Size         int64
	Major, Minor uint32 // the device number of a device node
}

// IsRegular reports a regular file.
func (h *Header) IsRegular() bool { return h.Mode&0o170000 == modeRegular }

// IsDir reports a directory.
func (h *Header) IsDir() bool { return h.Mode&0o170000 == modeDir }

// IsSymlink reports a symbolic link, whose target is its content.
func (h *Header) IsSymlink() bool { return h.Mode&0o170000 == modeSymlink }

// Reader reads an initrd the way the kernel unpacks it, and refuses what
// would make the kernel's result differ from a plain reading of the entries:
// a second archive or anything but zero padding after the trailer, two
// entries for one path, hard links (the kernel joins their contents), names
// that are not clean relative paths, and entries below a symlink. Write never
// writes any of these.
type Reader struct {
	src      *bufio.Reader
	closer   func()
	pos      int64 // bytes of the cpio stream consumed
	body     int64 // bytes of the current entry's content not yet read
	bodyPad  int64
	seen     map[string]uint32 // name → type bits
	finished bool
}

// NewReader detects the compression (zstd, gzip or none, as Write writes)
// and returns a reader positioned before the first entry. Close releases it.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(6)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w: %w", ErrFormat, err)
	}
	rd := &Reader{seen: map[string]uint32{}, closer: func() {}}
	switch {
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(MaxUnpackedBytes))
		if err != nil {
			return nil, fmt.Errorf("initrd: zstd: %w", err)
		}
		rd.src, rd.closer = bufio.NewReaderSize(dec, 64<<10), dec.Close
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		dec, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("initrd: gzip: %w", err)
		}
		rd.src = bufio.NewReaderSize(dec, 64<<10)
	case string(magic) == newcMagic:
		rd.src = br
	default:
		return nil, fmt.Errorf("initrd: %w: starts with %q, not zstd, gzip or a newc cpio archive", ErrFormat, magic)
	}
	return rd, nil
}

// Close releases the decompressor.
func (r *Reader) Close() error {
	r.closer()
	return nil
}

// Next skips the rest of the current entry and returns the next header. At
// the trailer it checks that only zero padding follows, to the end of the
// stream, and returns io.EOF.
func (r *Reader) Next() (*Header, error) {
	if r.finished {
		return nil, io.EOF
	}
	if err := r.skip(r.body + r.bodyPad); err != nil {
		return nil, err
	}
	r.body, r.bodyPad = 0, 0
	var raw [110]byte
	if err := r.readFull(raw[:]); err != nil {
		return nil, r.formatErr("header at byte %d: %w", r.pos, err)
	}
	if string(raw[:6]) != newcMagic {
		return nil, r.formatErr("header at byte %d: magic %q is not newc (%s)", r.pos-110, raw[:6], newcMagic)
	}
	var f [13]uint32
	for i := range f {
		field := raw[6+8*i : 14+8*i]
		n, err := strconv.ParseUint(string(field), 16, 32)
		if err != nil || strings.ContainsAny(string(field), "+-xX") {
			return nil, r.formatErr("header at byte %d: field %d %q is not 8 hex digits", r.pos-110, i, field)
		}
		f[i] = uint32(n)
	}
	// ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
	h := &Header{Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5], Size: int64(f[6]), Major: f[9], Minor: f[10]}
	nameSize := int(f[11])
	if f[12] != 0 {
		return nil, r.formatErr("header at byte %d: check field %#x set (a crc archive?)", r.pos-110, f[12])
	}
	if nameSize < 2 || nameSize > maxName {
		return nil, r.formatErr("header at byte %d: name size %d outside 2 to %d", r.pos-110, nameSize, maxName)
	}
	name := make([]byte, nameSize)
	if err := r.readFull(name); err != nil {
		return nil, r.formatErr("name at byte %d: %w", r.pos, err)
	}
	if name[nameSize-1] != 0 || bytes.IndexByte(name[:nameSize-1], 0) >= 0 {
		return nil, r.formatErr("name %q at byte %d is not one NUL-terminated string", name, r.pos-int64(nameSize))
	}
	h.Name = string(name[:nameSize-1])
	if err := r.skip(pad4(r.pos)); err != nil {
		return nil, err
	}
	if h.Name == trailerName {
		return nil, r.finish()
	}
	if err := r.check(h); err != nil {
		return nil, err
	}
	r.body, r.bodyPad = h.Size, pad4(r.pos+h.Size)
	return h, nil
}

// check applies the rules that keep the kernel's unpacking equal to a
// plain reading of the entries.
func (r *Reader) check(h *Header) error {
	if !fs.ValidPath(h.Name) || h.Name == "." {
		return r.formatErr("entry %q: not a clean relative path", h.Name)
	}
	typ := h.Mode & 0o170000
	switch typ {
	case modeRegular:
		if h.Nlink != 1 {
			return r.formatErr("entry %q: regular file with %d links (the kernel would join hard links)", h.Name, h.Nlink)
		}
	case modeSymlink:
		if h.Size == 0 || h.Size > maxName {
			return r.formatErr("entry %q: symlink target of %d bytes", h.Name, h.Size)
		}
	case modeDir, modeCharDev, modeBlkDev, modeFIFO, modeSocket:
		if h.Size != 0 {
			return r.formatErr("entry %q: %d bytes of content on a file type that has none", h.Name, h.Size)
		}
	default:
		return r.formatErr("entry %q: unknown file type %#o", h.Name, typ)
	}
	if t, dup := r.seen[h.Name]; dup && !(t == impliedDir && typ == modeDir) {
		return r.formatErr("entry %q: stored twice, or a directory of an earlier entry (the kernel would not unpack what it says)", h.Name)
	}
	for dir := path.Dir(h.Name); dir != "."; dir = path.Dir(dir) {
		t, ok := r.seen[dir]
		if ok && t != modeDir && t != impliedDir {
			return r.formatErr("entry %q: below %q, which is not a directory", h.Name, dir)
		}
		if !ok {
			r.seen[dir] = impliedDir
		}
	}
	r.seen[h.Name] = typ
	return nil
}

// Read reads the current entry's content.
func (r *Reader) Read(p []byte) (int, error) {
	if r.body <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.body {
		p = p[:r.body]
	}
	n, err := r.src.Read(p)
	r.pos += int64(n)
	r.body -= int64(n)
	if err == io.EOF && r.body > 0 {
		err = r.formatErr("content cut short: %w", io.ErrUnexpectedEOF)
	}
	if err == nil && r.pos > MaxUnpackedBytes {
		err = r.formatErr("more than %d bytes unpacked", int64(MaxUnpackedBytes))
	}
	return n, err
}

// finish accepts only zero bytes after the trailer: the kernel would
// unpack anything else as a further archive.
func (r *Reader) finish() error {
	r.finished = true
	buf := make([]byte, 32<<10)
	for {
		n, err := r.src.Read(buf)
		r.pos += int64(n)
		for i, b := range buf[:n] {
			if b != 0 {
				return r.formatErr("byte %d after the trailer is %#x: a second archive?", r.pos-int64(n)+int64(i), b)
			}
		}
		if r.pos > MaxUnpackedBytes {
			return r.formatErr("more than %d bytes unpacked", int64(MaxUnpackedBytes))
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("initrd: after the trailer: %w", err)
		}
	}
}

func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.src, p)
	r.pos += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // an archive ends with its trailer, not at a header
	}
	return err
}

func (r *Reader) skip(n int64) error {
	if n == 0 {
		return nil
	}
	if r.pos+n > MaxUnpackedBytes {
		return r.formatErr("more than %d bytes unpacked", int64(MaxUnpackedBytes))
	}
	m, err := io.CopyN(io.Discard, r.src, n)
	r.pos += m
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("initrd: at byte %d: %w", r.pos, err)
	}
	return nil
}

func (r *Reader) formatErr(format string, args ...any) error {
	return fmt.Errorf("initrd: %w: %w", ErrFormat, fmt.Errorf(format, args...))
}

// impliedDir marks a directory that only the names below it made.
const impliedDir = 1 << 31

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// ReadFile reads the whole archive in r, checking it as Reader does, and
// returns the content of the regular file name ("/uni/init.json" or
// "uni/init.json"), which must be at most max bytes.
func ReadFile(r io.Reader, name string, max int64) ([]byte, error) {
	want := strings.TrimPrefix(path.Clean("/"+name), "/")
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var data []byte
	found := false
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Name != want {
			continue
		}
		if !h.IsRegular() {
			return nil, fmt.Errorf("initrd: %s: %w: not a regular file (mode %#o)", name, ErrFormat, h.Mode)
		}
		if h.Size > max {
			return nil, fmt.Errorf("initrd: %s: %d bytes, more than %d", name, h.Size, max)
		}
		if data, err = io.ReadAll(rd); err != nil {
			return nil, err
		}
		found = true
	}
	if !found {
		return nil, fmt.Errorf("initrd: %s: %w", name, fs.ErrNotExist)
	}
	return data, nil
}
