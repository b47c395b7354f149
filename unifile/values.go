package unifile

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// sizeUnits are MEMORY's suffixes, all binary multiples (as Docker's
// --memory): "M", "MB" and "MiB" all mean 2^20 bytes.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// parseMemory parses a MEMORY size and checks its bounds. Each way of
// being wrong gets its own message.
func parseMemory(s string) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("MEMORY %s is out of range: a size cannot be negative; allowed is %s to %s", s, humanBytes(MinMemoryBytes), humanBytes(MaxMemoryBytes))
	}
	digits := strings.TrimLeft(s, "0123456789")
	number, unit := s[:len(s)-len(digits)], strings.ToLower(strings.TrimSpace(digits))
	mult, ok := sizeUnits[unit]
	if number == "" || !ok {
		return 0, fmt.Errorf("MEMORY %q: want a whole number with an optional unit, e.g. 128M, 1G, 512MiB", s)
	}
	tooLarge := fmt.Errorf("MEMORY %s is out of range: the most is %s", s, humanBytes(MaxMemoryBytes))
	n, err := strconv.ParseInt(number, 10, 64)
	if err != nil || n > MaxMemoryBytes/mult {
		return 0, tooLarge
	}
	bytes := n * mult
	switch {
	case bytes == 0:
		return 0, fmt.Errorf("MEMORY %s is out of range: the size is zero; the least is %s", s, humanBytes(MinMemoryBytes))
	case bytes < MinMemoryBytes:
		return 0, fmt.Errorf("MEMORY %s is out of range: the least is %s", s, humanBytes(MinMemoryBytes))
	case bytes > MaxMemoryBytes:
		return 0, tooLarge
	case bytes%(1<<20) != 0:
		return 0, fmt.Errorf("MEMORY %s is not a whole number of MiB", s)
	}
	return bytes, nil
}

func humanBytes(n int64) string {
	if n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// parseCPUs parses a CPUS count and checks its bounds.
func parseCPUs(s string) (int, error) {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && strings.TrimLeft(s, "-0123456789") == "" && s != "" && s != "-":
		return 0, fmt.Errorf("CPUS %s is out of range: the most is %d", s, MaxCPUs)
	case err != nil:
		return 0, fmt.Errorf("CPUS %q: want a whole number from %d to %d", s, MinCPUs, MaxCPUs)
	case n < 0:
		return 0, fmt.Errorf("CPUS %s is out of range: a count cannot be negative; allowed is %d to %d", s, MinCPUs, MaxCPUs)
	case n < MinCPUs:
		return 0, fmt.Errorf("CPUS %s is out of range: a unikernel needs at least %d CPU", s, MinCPUs)
	case n > MaxCPUs:
		return 0, fmt.Errorf("CPUS %s is out of range: the most is %d", s, MaxCPUs)
	}
	return n, nil
}

// parsePorts parses one EXPOSE word: 80, 80/tcp, 53/udp, 8000-8002[/proto].
func parsePorts(word string) ([]spec.Port, error) {
	portPart, proto, hasProto := strings.Cut(word, "/")
	proto = strings.ToLower(proto)
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("EXPOSE %s: protocol must be tcp or udp", word)
	}
	first, last, isRange := strings.Cut(portPart, "-")
	lo, err := parsePort(first)
	if err != nil {
		return nil, fmt.Errorf("EXPOSE %s: %w", word, err)
	}
	hi := lo
	if isRange {
		if hi, err = parsePort(last); err != nil {
			return nil, fmt.Errorf("EXPOSE %s: %w", word, err)
		}
		if hi < lo {
			return nil, fmt.Errorf("EXPOSE %s: the range ends before it starts", word)
		}
		if n := hi - lo + 1; n > MaxExposedPorts {
			return nil, fmt.Errorf("EXPOSE %s: a range of %d ports is more than the %d a unikernel may forward; expose the ports the app listens on", word, n, MaxExposedPorts)
		}
	}
	ports := make([]spec.Port, 0, hi-lo+1)
	for p := lo; p <= hi; p++ {
		ports = append(ports, spec.Port{Port: uint16(p), Protocol: proto})
	}
	return ports, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q must be a number from 1 to 65535", s)
	}
	return n, nil
}

// parseConfigPort parses a key of an image config's ExposedPorts: "80/tcp",
// "53/udp", or "8080" (tcp).
func parseConfigPort(key string) (spec.Port, error) {
	num, proto, hasProto := strings.Cut(key, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return spec.Port{}, fmt.Errorf("protocol %q: a unikernel forwards tcp and udp", proto)
	}
	n, err := parsePort(num)
	if err != nil {
		return spec.Port{}, err
	}
	return spec.Port{Port: uint16(n), Protocol: proto}, nil
}

// checkPath refuses a path no file system of ours should see: one with a
// control character (a NUL byte would corrupt the squashfs), a name longer
// than MaxNameBytes or a path longer than MaxPathBytes.
func checkPath(what, p string) error {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s %q: a path cannot hold a control character (byte 0x%02x at %d)", what, p, c, i)
		}
	}
	if len(p) > MaxPathBytes {
		return fmt.Errorf("%s %.40q…: the path is %d bytes long, more than the %d allowed", what, p, len(p), MaxPathBytes)
	}
	for name := range strings.SplitSeq(p, "/") {
		if len(name) > MaxNameBytes {
			return fmt.Errorf("%s: the name %.40q… is %d bytes long, more than the %d allowed", what, name, len(name), MaxNameBytes)
		}
	}
	return nil
}

// parseChmod parses COPY's --chmod: an octal mode up to 07777.
func parseChmod(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("COPY --chmod=%s: want an octal mode such as 0755", s)
	}
	return uint32(n), nil
}

// UserSpec is a USER or COPY --chown value split at the colon. Numbers
// are ids; anything else is a name the engine resolves against the root's
// /etc/passwd and /etc/group. A missing group means the user's primary
// group, as in Docker.
type UserSpec struct {
	User  string
	Group string // empty if absent
}

// ParseUserSpec splits "user[:group]".
func ParseUserSpec(s string) (UserSpec, error) {
	user, group, hasGroup := strings.Cut(s, ":")
	if user == "" || (hasGroup && group == "") || strings.ContainsAny(s, " \t\n") {
		return UserSpec{}, fmt.Errorf("user %q: want uid[:gid] or name[:group]", s)
	}
	return UserSpec{User: user, Group: group}, nil
}

// UID returns the user as a number, if it is one.
func (u UserSpec) UID() (uint32, bool) { return parseID(u.User) }

// GID returns the group as a number, if it is given and is one.
func (u UserSpec) GID() (uint32, bool) { return parseID(u.Group) }

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// cleanAbs cleans an absolute path and rejects a relative one.
func cleanAbs(p, what string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%s %q: must be an absolute path", what, p)
	}
	return path.Clean(p), nil
}

// isURL reports sources that only ADD understands.
func isURL(s string) bool {
	lower := strings.ToLower(s)
	for _, prefix := range []string{"http://", "https://", "git@", "git://", "ssh://"} {
		if strings.HasPrefix(lower, prefix) {
			return true
		}
	}
	return false
}
