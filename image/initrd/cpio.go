package initrd

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// newcMagic opens every header of the "new ASCII" cpio format, the one the
// kernel's initramfs unpacker reads.
const newcMagic = "070701"

// trailerName ends a cpio archive.
const trailerName = "TRAILER!!!"

// Unix file type bits (stat.h), as cpio stores them in the mode field.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
	modeBlkDev  = 0o060000
	modeFIFO    = 0o010000
	modeSocket  = 0o140000
)

// cpioWriter writes newc records, keeping the byte count for padding and
// handing out inode numbers in write order.
type cpioWriter struct {
	w       *bufio.Writer
	written int64
	nextIno uint32
	mtime   uint32
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.written += int64(n)
	return err
}

// pad brings the archive to the next multiple of four bytes, as newc requires
// after every name and every file body.
func (c *cpioWriter) pad() error {
	if r := c.written % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// header writes one record header and its name.
func (c *cpioWriter) header(name string, mode, uid, gid, nlink uint32, size int64, rdev uint64) error {
	if size > 0xffffffff {
		return fmt.Errorf("%s: %d bytes is too large for a newc cpio entry", name, size)
	}
	ino := uint32(0)
	if name != trailerName {
		c.nextIno++
		ino = c.nextIno
	}
	mtime := c.mtime
	if name == trailerName {
		mtime = 0
	}
	major, minor := devMajor(rdev), devMinor(rdev)
	h := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		newcMagic, ino, mode, uid, gid, nlink, mtime, uint32(size),
		0, 0, major, minor, len(name)+1, 0)
	if err := c.write([]byte(h)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	return c.pad()
}

// entry writes e and, for a regular file or symlink, its content.
func (c *cpioWriter) entry(e *rootfs.Entry, nlink uint32) error {
	name := strings.TrimPrefix(e.Path, "/")
	mode, err := cpioMode(e)
	if err != nil {
		return err
	}
	switch {
	case e.IsSymlink():
		if err := c.header(name, mode, e.UID, e.GID, 1, int64(len(e.Link)), 0); err != nil {
			return err
		}
		if err := c.write([]byte(e.Link)); err != nil {
			return err
		}
		return c.pad()
	case e.IsRegular():
		if err := c.header(name, mode, e.UID, e.GID, 1, e.Size, 0); err != nil {
			return err
		}
		if err := c.body(e); err != nil {
			return err
		}
		return c.pad()
	case e.IsDir():
		return c.header(name, mode, e.UID, e.GID, nlink, 0, 0)
	default: // devices, fifos: one name each
		return c.header(name, mode, e.UID, e.GID, 1, 0, e.Rdev)
	}
}

// body copies a regular file's bytes, and fails if the file does not hold
// exactly the size already written in its header (it changed under us).
func (c *cpioWriter) body(e *rootfs.Entry) error {
	r, err := e.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(c.w, io.LimitReader(r, e.Size))
	c.written += n
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if n != e.Size {
		return fmt.Errorf("%s: read %d bytes, expected %d (file changed?)", e.Path, n, e.Size)
	}
	var extra [1]byte
	if m, _ := r.Read(extra[:]); m > 0 {
		return fmt.Errorf("%s: longer than the expected %d bytes (file changed?)", e.Path, e.Size)
	}
	return nil
}

func (c *cpioWriter) trailer() error {
	return c.header(trailerName, 0, 0, 0, 1, 0, 0)
}

// cpioMode turns an entry's fs.FileMode into the Unix st_mode cpio stores.
func cpioMode(e *rootfs.Entry) (uint32, error) {
	m := e.Mode
	perm := rootfs.UnixPerm(m)
	switch {
	case m.IsDir():
		return modeDir | perm, nil
	case m.IsRegular():
		return modeRegular | perm, nil
	case m&fs.ModeSymlink != 0:
		return modeSymlink | perm, nil
	case m&fs.ModeCharDevice != 0:
		return modeCharDev | perm, nil
	case m&fs.ModeDevice != 0:
		return modeBlkDev | perm, nil
	case m&fs.ModeNamedPipe != 0:
		return modeFIFO | perm, nil
	case m&fs.ModeSocket != 0:
		return modeSocket | perm, nil
	}
	return 0, fmt.Errorf("%s: unsupported file type %v", e.Path, m.Type())
}

// devMajor and devMinor split a Linux dev_t (glibc's encoding).
func devMajor(dev uint64) uint32 {
	return uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff)
}

func devMinor(dev uint64) uint32 {
	return uint32(dev&0xff) | uint32((dev>>12)&^0xff)
}
