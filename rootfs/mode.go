package rootfs

import "io/fs"

// Unix permission bits beyond rwx, as st_mode, tar and squashfs store them.
const (
	unixSetuid = 0o4000
	unixSetgid = 0o2000
	unixSticky = 0o1000
)

// UnixPerm turns Go's permission bits of m into the 12 low bits of a Unix
// st_mode: rwx for all three classes, setuid, setgid and sticky.
func UnixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= unixSetuid
	}
	if m&fs.ModeSetgid != 0 {
		p |= unixSetgid
	}
	if m&fs.ModeSticky != 0 {
		p |= unixSticky
	}
	return p
}

// PermFromUnix is UnixPerm's inverse: the 12 low bits of a Unix mode as
// Go's permission bits.
func PermFromUnix(m uint32) fs.FileMode {
	p := fs.FileMode(m) & fs.ModePerm
	if m&unixSetuid != 0 {
		p |= fs.ModeSetuid
	}
	if m&unixSetgid != 0 {
		p |= fs.ModeSetgid
	}
	if m&unixSticky != 0 {
		p |= fs.ModeSticky
	}
	return p
}
