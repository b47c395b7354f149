package rootfs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of the names a Tree holds. They are Linux's: a longer name or
// path could be written into a squashfs or cpio archive but never opened
// by the guest, and the writers would fail late or write a corrupt image.
const (
	MaxNameLen = 255  // bytes in one path component (NAME_MAX)
	MaxPathLen = 4095 // bytes in a path (PATH_MAX, 4096, counts the final NUL)
	// MaxDepth bounds how many directories deep a path may go. A path
	// must fit in PATH_MAX, so nothing much deeper could be used anyway
	// (4095 bytes hold at most 2047 levels of one-letter names); the bound
	// keeps a walk of a hostile tree short and says so clearly.
	MaxDepth = 1024
)

// ErrInvalidPath is wrapped by every error of CheckPath and CheckLink.
var ErrInvalidPath = errors.New("invalid path")

// ErrTooDeep is wrapped (with ErrInvalidPath) when a path is more than
// MaxDepth levels deep.
var ErrTooDeep = errors.New("too deep")

// ErrNotDir is wrapped when a path leads through something that is not a
// directory.
var ErrNotDir = errors.New("not a directory")

// NameError says which path is wrong and why. It wraps ErrInvalidPath and
// the specific cause.
type NameError struct {
	Path   string // the path, as given (shortened in messages when very long); "" when the message names it already
	Reason string
	Err    error // ErrInvalidPath, or ErrTooDeep
}

func (e *NameError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return fmt.Sprintf("%s: %s", Quote(e.Path), e.Reason)
}
func (e *NameError) Unwrap() []error {
	if e.Err == ErrInvalidPath {
		return []error{ErrInvalidPath}
	}
	return []error{e.Err, ErrInvalidPath}
}

// CheckPath refuses a path that no Linux guest could use: one holding a NUL
// byte, a component longer than MaxNameLen, more than MaxPathLen bytes, or
// more than MaxDepth levels. p is taken as it is (clean it first).
func CheckPath(p string) error {
	if i := strings.IndexByte(p, 0); i >= 0 {
		return &NameError{Path: p, Reason: "the name holds a NUL byte", Err: ErrInvalidPath}
	}
	depth, start := 0, 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		if n := i - start; n > 0 {
			depth++
			if n > MaxNameLen {
				reason := fmt.Sprintf("the name is %d bytes long, more than %d", n, MaxNameLen)
				if start > 1 || i < len(p) { // say which name of the path
					reason = fmt.Sprintf("the name %s is %d bytes long, more than %d", Quote(p[start:i]), n, MaxNameLen)
				}
				return &NameError{Path: p, Reason: reason, Err: ErrInvalidPath}
			}
			if depth > MaxDepth {
				return &NameError{Path: p[:i], Reason: fmt.Sprintf("more than %d directory levels deep", MaxDepth), Err: ErrTooDeep}
			}
		}
		start = i + 1
	}
	if len(p) > MaxPathLen {
		return &NameError{Path: p, Reason: fmt.Sprintf("the path is %d bytes long, more than %d", len(p), MaxPathLen), Err: ErrInvalidPath}
	}
	return nil
}

// CheckLink refuses a symlink target that no Linux guest could store:
// empty, holding a NUL byte, or longer than MaxPathLen. Where the target
// leads is not checked here: the guest resolves it inside its own root.
func CheckLink(linkPath, target string) error {
	switch {
	case target == "":
		return &NameError{Path: linkPath, Reason: "symlink target is empty", Err: ErrInvalidPath}
	case strings.IndexByte(target, 0) >= 0:
		return &NameError{Path: linkPath, Reason: fmt.Sprintf("symlink target %s holds a NUL byte", Quote(target)), Err: ErrInvalidPath}
	case len(target) > MaxPathLen:
		return &NameError{Path: linkPath, Reason: fmt.Sprintf("symlink target is %d bytes long, more than %d", len(target), MaxPathLen), Err: ErrInvalidPath}
	}
	return nil
}

// Depth returns how many levels below "/" the clean path p is.
func Depth(p string) int {
	if p == "/" || p == "" {
		return 0
	}
	return strings.Count(strings.TrimSuffix(p, "/"), "/")
}

// quoteLimit is how much of a name or path error messages show.
const quoteLimit = 1024

// Quote prepares a name for an error message: as it is when it holds only
// printable characters, else quoted as %q does (so a NUL or an escape
// sequence never reaches the terminal raw), and a very long one cut in the
// middle so that the message stays readable.
func Quote(s string) string {
	if len(s) > quoteLimit {
		return Quote(s[:quoteLimit/4]) + fmt.Sprintf("…(%d bytes)…", len(s)) + Quote(s[len(s)-quoteLimit/4:])
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s || s == "" {
		return q
	}
	return s
}
