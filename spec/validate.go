package spec

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of an image config. Memory and CPUs are also the Unifile's
// bounds (MEMORY, CPUS: package unifile names these); the rest keep a hostile config.json from costing more
// than a real one ever needs.
const (
	MinMemoryBytes = 32 << 20
	MaxMemoryBytes = 64 << 30
	MinCPUs        = 1
	MaxCPUs        = 64

	MaxArgs        = 1024     // entrypoint entries
	MaxEnv         = 1024     // env entries
	MaxLabels      = 256      // labels
	MaxStringBytes = 32 << 10 // any one string but the cmdline (Linux's MAX_ARG_STRLEN is 128 KiB)
	MaxLabelKey    = 256
	MaxLabelValue  = 4096
	MaxCmdline     = 2048 // x86's COMMAND_LINE_SIZE
	MaxHostname    = 64   // Linux's HOST_NAME_MAX
	MaxRootfsBytes = 1 << 40
	MaxNameBytes   = 1024 // kernel.name, kernel.release, build.tool
)

// Boot modes an image may list in bootModes.
var BootModes = []string{"direct", "uefi", "bios"}

// FieldError is an invalid field of a config, named by its JSON path
// (e.g. exposedPorts[0].protocol).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks every field of an image config against the schema of
// schemaVersion 1. A config read from a layout or a registry is untrusted:
// nothing of it may reach a command line or the guest before Validate
// accepted it. The first bad field is reported, by its JSON path.
func (c *ImageConfig) Validate() error {
	if c.SchemaVersion != 1 {
		return fieldErr("schemaVersion", "%d is not supported (want 1)", c.SchemaVersion)
	}
	if len(c.Entrypoint) == 0 {
		return fieldErr("entrypoint", "is empty: the image has nothing to run")
	}
	if len(c.Entrypoint) > MaxArgs {
		return fieldErr("entrypoint", "%d entries, more than %d", len(c.Entrypoint), MaxArgs)
	}
	for i, a := range c.Entrypoint {
		if err := checkString(fmt.Sprintf("entrypoint[%d]", i), a, MaxStringBytes); err != nil {
			return err
		}
	}
	if err := checkAbsPath("entrypoint[0]", c.Entrypoint[0]); err != nil {
		return err
	}
	if len(c.Env) > MaxEnv {
		return fieldErr("env", "%d entries, more than %d", len(c.Env), MaxEnv)
	}
	for i, kv := range c.Env {
		if err := checkEnv(fmt.Sprintf("env[%d]", i), kv); err != nil {
			return err
		}
	}
	if c.WorkingDir != "" {
		// Absolute, but not necessarily clean: base images carry "/app/".
		if err := checkString("workingDir", c.WorkingDir, MaxStringBytes); err != nil {
			return err
		}
		if !strings.HasPrefix(c.WorkingDir, "/") {
			return fieldErr("workingDir", "%s is not an absolute path", strconv.Quote(c.WorkingDir))
		}
	}
	if c.User != nil && (c.User.UID == 1<<32-1 || c.User.GID == 1<<32-1) {
		return fieldErr("user", "uid or gid 4294967295 means \"no id\" to the kernel")
	}
	if err := checkPorts(c.ExposedPorts); err != nil {
		return err
	}
	if c.MemoryBytes < MinMemoryBytes || c.MemoryBytes > MaxMemoryBytes {
		return fieldErr("memoryBytes", "%d is outside %d (32 MiB) to %d (64 GiB)", c.MemoryBytes, int64(MinMemoryBytes), int64(MaxMemoryBytes))
	}
	if c.MemoryBytes%(1<<20) != 0 {
		return fieldErr("memoryBytes", "%d is not a whole number of MiB", c.MemoryBytes)
	}
	if c.CPUs < MinCPUs || c.CPUs > MaxCPUs {
		return fieldErr("cpus", "%d is outside %d to %d", c.CPUs, MinCPUs, MaxCPUs)
	}
	if c.Hostname != "" {
		if err := CheckHostname(c.Hostname); err != nil {
			return fieldErr("hostname", "%s", err)
		}
	}
	if err := checkLabels(c.Labels); err != nil {
		return err
	}
	if err := checkString("kernel.name", c.Kernel.Name, MaxNameBytes); err != nil {
		return err
	}
	if err := checkString("kernel.release", c.Kernel.Release, MaxNameBytes); err != nil {
		return err
	}
	if err := CheckDigest("kernel.digest", c.Kernel.Digest); err != nil {
		return err
	}
	if a := c.Kernel.Arch; a != "" && !slices.Contains(Arches, a) {
		return fieldErr("kernel.arch", "%s is not one of %s", strconv.Quote(a), strings.Join(Arches, ", "))
	}
	if err := checkCmdline("cmdline", c.Cmdline); err != nil {
		return err
	}
	if c.Rootfs.Type != "squashfs" {
		return fieldErr("rootfs.type", "%s is not squashfs", strconv.Quote(c.Rootfs.Type))
	}
	if err := CheckDigest("rootfs.digest", c.Rootfs.Digest); err != nil {
		return err
	}
	if c.Rootfs.Size <= 0 || c.Rootfs.Size > MaxRootfsBytes {
		return fieldErr("rootfs.size", "%d is outside 1 to %d", c.Rootfs.Size, int64(MaxRootfsBytes))
	}
	if err := CheckDigest("rootfs.superblockDigest", c.Rootfs.SuperblockDigest); err != nil {
		return err
	}
	if err := checkBootModes(c.BootModes); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		ref  *FileRef
	}{{"kernelFile", c.KernelFile}, {"initrd", c.Initrd}, {"disk", c.Disk}} {
		if f.ref == nil {
			continue
		}
		if err := CheckDigest(f.name+".digest", f.ref.Digest); err != nil {
			return err
		}
		if f.ref.Size <= 0 || f.ref.Size > MaxRootfsBytes {
			return fieldErr(f.name+".size", "%d is outside 1 to %d", f.ref.Size, int64(MaxRootfsBytes))
		}
	}
	if c.Build.SourceDateEpoch < 0 {
		return fieldErr("build.sourceDateEpoch", "%d is negative", c.Build.SourceDateEpoch)
	}
	return checkString("build.tool", c.Build.Tool, MaxNameBytes)
}

// checkString refuses what no field needs and a terminal or a parser may
// misread: invalid UTF-8, NUL and other control characters, and more than
// max bytes.
func checkString(field, s string, max int) error {
	if len(s) > max {
		return fieldErr(field, "%d bytes, more than %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "%s is not valid UTF-8", strconv.Quote(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fieldErr(field, "%s holds the control character %U", strconv.Quote(s), r)
		}
	}
	return nil
}

// checkAbsPath wants an absolute, clean path.
func checkAbsPath(field, p string) error {
	if err := checkString(field, p, MaxStringBytes); err != nil {
		return err
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fieldErr(field, "%s is not an absolute clean path", strconv.Quote(p))
	}
	return nil
}

// checkEnv wants KEY=VALUE with a key of printable ASCII without '=' or
// spaces (Docker accepts more than POSIX names, e.g. dots).
func checkEnv(field, kv string) error {
	if err := checkString(field, kv, MaxStringBytes); err != nil {
		return err
	}
	key, _, ok := strings.Cut(kv, "=")
	if !ok {
		return fieldErr(field, "%s is not KEY=VALUE", strconv.Quote(kv))
	}
	if key == "" {
		return fieldErr(field, "%s has an empty key", strconv.Quote(kv))
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return fieldErr(field, "key %s holds %q, which no environment variable name has", strconv.Quote(key), key[i])
		}
	}
	return nil
}

func checkPorts(ports []Port) error {
	if len(ports) > 2*65535 {
		return fieldErr("exposedPorts", "%d entries, more than every tcp and udp port", len(ports))
	}
	seen := make(map[Port]bool, len(ports))
	for i, p := range ports {
		field := fmt.Sprintf("exposedPorts[%d]", i)
		if p.Port == 0 {
			return fieldErr(field+".port", "0 is not a port (want 1 to 65535)")
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fieldErr(field+".protocol", "%s is not tcp or udp", strconv.Quote(p.Protocol))
		}
		if seen[p] {
			return fieldErr(field, "%d/%s is listed twice", p.Port, p.Protocol)
		}
		seen[p] = true
	}
	return nil
}

// CheckHostname accepts an RFC 1123 host name that Linux can hold:
// dot-separated labels of letters, digits and inner hyphens, 1 to 63
// bytes each, 64 bytes in all.
func CheckHostname(h string) error {
	if h == "" || len(h) > MaxHostname {
		return fmt.Errorf("%s: want 1 to %d bytes", strconv.Quote(h), MaxHostname)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%s is not an RFC 1123 host name (label %s)", strconv.Quote(h), strconv.Quote(label))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%s is not an RFC 1123 host name (%q)", strconv.Quote(h), c)
			}
		}
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fieldErr("labels", "%d entries, more than %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if k == "" {
			return fieldErr("labels", "a label has an empty key")
		}
		if err := checkString("labels["+strconv.Quote(k)+"] (key)", k, MaxLabelKey); err != nil {
			return err
		}
		if err := checkString("labels["+strconv.Quote(k)+"]", v, MaxLabelValue); err != nil {
			return err
		}
	}
	return nil
}

// CheckDigest wants "sha256:" and 64 lowercase hex digits.
func CheckDigest(field, d string) error {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return fieldErr(field, "%s is not sha256: and 64 lowercase hex digits", strconv.Quote(d))
	}
	return nil
}

// checkCmdline wants printable ASCII of a length the kernel takes.
func checkCmdline(field, s string) error {
	if len(s) > MaxCmdline {
		return fieldErr(field, "%d bytes, more than %d", len(s), MaxCmdline)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fieldErr(field, "byte %d is %q: want printable ASCII", i, s[i])
		}
	}
	return nil
}

func checkBootModes(modes []string) error {
	if len(modes) == 0 {
		return fieldErr("bootModes", "is empty")
	}
	seen := map[string]bool{}
	for i, m := range modes {
		field := fmt.Sprintf("bootModes[%d]", i)
		known := false
		for _, b := range BootModes {
			known = known || m == b
		}
		if !known {
			return fieldErr(field, "%s is not direct, uefi or bios", strconv.Quote(m))
		}
		if seen[m] {
			return fieldErr(field, "%s is listed twice", m)
		}
		seen[m] = true
	}
	return nil
}

// InitConfig is the init's config that an image with this config carries
// in its initrd (InitConfigPath): the assembler writes it, and a layout's
// Verify checks the initrd against it.
func (c *ImageConfig) InitConfig() InitConfig {
	ic := InitConfig{
		Args:                   c.Entrypoint,
		Env:                    c.Env,
		WorkingDir:             c.WorkingDir,
		Hostname:               c.Hostname,
		RootfsSuperblockDigest: c.Rootfs.SuperblockDigest,
		RootfsType:             c.Rootfs.Type,
	}
	if c.User != nil {
		ic.UID, ic.GID = c.User.UID, c.User.GID
	}
	return ic
}
