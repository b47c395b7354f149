package engine

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
	"github.com/uniforge/packer-plugin-unikernel/unifile"
)

// resolveUser turns a USER or --chown value into ids, looking names up in
// the root's /etc/passwd and /etc/group. A user without a group takes the
// user's primary group (Docker's rule), or group 0 when the user is
// numeric and not in the root's /etc/passwd (Docker's rule too).
func resolveUser(fsys rootfs.FS, spec string) (uid, gid uint32, err error) {
	if spec == "" {
		return 0, 0, nil
	}
	us, err := unifile.ParseUserSpec(spec)
	if err != nil {
		return 0, 0, err
	}
	uid, uok := us.UID()
	primary := uint32(0)
	if !uok {
		fields, err := lookup(fsys, "/etc/passwd", us.User)
		if err != nil {
			return 0, 0, err
		}
		if len(fields) < 4 {
			return 0, 0, fmt.Errorf("/etc/passwd: malformed entry for %q", us.User)
		}
		u, e1 := strconv.ParseUint(fields[2], 10, 32)
		g, e2 := strconv.ParseUint(fields[3], 10, 32)
		if e1 != nil || e2 != nil {
			return 0, 0, fmt.Errorf("/etc/passwd: malformed ids for %q", us.User)
		}
		uid, primary = uint32(u), uint32(g)
	} else if fields, err := lookupByID(fsys, "/etc/passwd", uid); err == nil && len(fields) >= 4 {
		if g, err := strconv.ParseUint(fields[3], 10, 32); err == nil {
			primary = uint32(g)
		}
	}
	if us.Group == "" {
		return uid, primary, nil
	}
	if g, ok := us.GID(); ok {
		return uid, g, nil
	}
	fields, err := lookup(fsys, "/etc/group", us.Group)
	if err != nil {
		return 0, 0, err
	}
	g, err := strconv.ParseUint(fields[2], 10, 32)
	if err != nil || len(fields) < 3 {
		return 0, 0, fmt.Errorf("/etc/group: malformed entry for %q", us.Group)
	}
	return uid, uint32(g), nil
}

// lookup finds the colon-separated line whose first field is name.
func lookup(fsys rootfs.FS, file, name string) ([]string, error) {
	var found []string
	err := scanDB(fsys, file, func(fields []string) bool {
		if fields[0] == name && len(fields) >= 3 {
			found = fields
			return true
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("%q not found in the root's %s", name, file)
	}
	return found, nil
}

func lookupByID(fsys rootfs.FS, file string, id uint32) ([]string, error) {
	var found []string
	want := strconv.FormatUint(uint64(id), 10)
	err := scanDB(fsys, file, func(fields []string) bool {
		if len(fields) >= 4 && fields[2] == want {
			found = fields
			return true
		}
		return false
	})
	if found == nil && err == nil {
		err = fmt.Errorf("id %d not in %s", id, file)
	}
	return found, err
}

func scanDB(fsys rootfs.FS, file string, match func([]string) bool) error {
	if fsys == nil {
		return fmt.Errorf("the root has no %s (FROM scratch: use numeric ids)", file)
	}
	e, _, err := rootfs.Resolve(fsys, file)
	if err != nil {
		return fmt.Errorf("the root has no %s: use numeric ids", file)
	}
	rc, err := e.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	s := bufio.NewScanner(io.LimitReader(rc, 16<<20))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if match(strings.Split(line, ":")) {
			return nil
		}
	}
	return s.Err()
}
