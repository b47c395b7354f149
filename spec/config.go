// Package spec holds the data contracts between the parts of uni: the image
// config (config.json of an image layout), the config the init reads from the
// initrd, and the kernel module index, with the checks a config read from an
// untrusted place must pass (validate.go). It imports the standard library
// only, so that the guest init can import it without the build side.
package spec

// Layout file names: an image layout is a directory holding these.
const (
	KernelFile = "kernel"
	InitrdFile = "initrd"
	RootfsFile = "rootfs.img"
	ConfigFile = "config.json"
	DiskFile   = "disk.img"
	// SBOMFile is the SPDX 2.3 document of what rootfs.img holds. It
	// describes the image (its namespace names rootfs.digest) and is not
	// recorded in config.json: the engines that build the same image do
	// not see the same origins of its files.
	SBOMFile = "sbom.spdx.json"
)

// Paths inside the initrd.
const (
	InitPath        = "/init"
	InitConfigPath  = "/uni/init.json"
	ModuleIndexPath = "/uni/modules.json"
	NewRootPath     = "/newroot" // where the init mounts the rootfs before moving into it
)

// SuperblockBytes is how much of rootfs.img its superblock digest covers:
// the init finds the rootfs among the guest's disks by it.
const SuperblockBytes = 4096

// MountPoints are the directories of the app's root that the init mounts
// its own filesystems over (devtmpfs, proc, sysfs, and tmpfs on /run and
// /tmp): every root gets them as empty directories, and anything a build
// put under them would be hidden at run time.
var MountPoints = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// Files of the app's root that the init binds its own over at boot (the
// root is read-only): every root has them, empty if need be.
const (
	ResolvConfPath = "/etc/resolv.conf" // the DNS servers DHCP gave
	HostsPath      = "/etc/hosts"       // localhost and the guest's hostname
)

// Console markers the init prints, and `uni run` and the benchmarks read.
const (
	// ExecMarker starts the line printed just before the app is started.
	ExecMarker = "uni: exec "
	// ExitMarker starts the line printed when the app has exited, followed by the decimal exit status.
	ExitMarker = "uni: exit status "
)

// ImageConfig is config.json of an image layout.
type ImageConfig struct {
	SchemaVersion int               `json:"schemaVersion"` // 1
	Entrypoint    []string          `json:"entrypoint"`    // argv; argv[0] is an absolute path in the rootfs
	Env           []string          `json:"env,omitempty"` // KEY=value
	WorkingDir    string            `json:"workingDir,omitempty"`
	User          *User             `json:"user,omitempty"`
	ExposedPorts  []Port            `json:"exposedPorts,omitempty"`
	MemoryBytes   int64             `json:"memoryBytes"`
	CPUs          int               `json:"cpus"`
	Hostname      string            `json:"hostname,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Kernel        KernelRef         `json:"kernel"`
	Cmdline       string            `json:"cmdline"` // kernel command line for every boot mode
	Rootfs        RootfsRef         `json:"rootfs"`
	BootModes     []string          `json:"bootModes"` // "direct", "uefi", "bios"
	Build         BuildInfo         `json:"build"`

	// Digests of the other files of the layout. Optional: a layout's Verify
	// checks each one that is set. KernelFile is the kernel file itself
	// (Kernel.Digest is its bundle's); Disk is disk.img as built with --disk.
	// sbom.spdx.json has none: it names rootfs.digest instead.
	KernelFile *FileRef `json:"kernelFile,omitempty"`
	Initrd     *FileRef `json:"initrd,omitempty"`
	Disk       *FileRef `json:"disk,omitempty"`
}

// User is the uid and gid the init drops to before starting the app.
type User struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// Port is one EXPOSEd port.
type Port struct {
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"` // "tcp" or "udp"
}

// KernelRef names the kernel bundle an image was built on.
type KernelRef struct {
	Name    string `json:"name"`
	Release string `json:"release"` // uname -r
	Digest  string `json:"digest"`  // sha256:… of the bundle
	// Arch is the bundle's architecture (Debian spelling, as bundle.json
	// has it) when it is not amd64, the default: "arm64". Left out for
	// amd64, so config.json of an amd64 image stays as it was.
	Arch string `json:"arch,omitempty"`
	// Microvm says the kernel boots on QEMU's microvm machine (its bundle
	// says so): direct boot then uses it instead of q35.
	Microvm bool `json:"microvm,omitempty"`
}

// DefaultArch is the architecture of an image whose kernel.arch is empty.
const DefaultArch = "amd64"

// Arches are the architectures kernel.arch may name (Debian spellings).
var Arches = []string{"amd64", "arm64", "i386"}

// Arch is the image's architecture: kernel.arch, or DefaultArch.
func (c *ImageConfig) Arch() string {
	if c.Kernel.Arch == "" {
		return DefaultArch
	}
	return c.Kernel.Arch
}

// RootfsRef describes rootfs.img.
type RootfsRef struct {
	Type   string `json:"type"`   // "squashfs"
	Digest string `json:"digest"` // sha256:… of rootfs.img
	Size   int64  `json:"size"`
	// SuperblockDigest is sha256:… of the filesystem's first 4096 bytes. The
	// init finds the rootfs by it, on a bare virtio disk (direct boot) or a
	// partition of disk.img alike.
	SuperblockDigest string `json:"superblockDigest"`
}

// FileRef is the size and digest of one file of a layout.
type FileRef struct {
	Digest string `json:"digest"` // sha256:…
	Size   int64  `json:"size"`
}

// BuildInfo records how the image was made; it holds nothing that changes
// between two builds of the same inputs.
type BuildInfo struct {
	SourceDateEpoch int64  `json:"sourceDateEpoch"`
	Tool            string `json:"tool"` // "uni <version>"
}

// InitConfig is what the init reads from /uni/init.json in the initrd.
type InitConfig struct {
	Args       []string `json:"args"` // argv; Args[0] is an absolute path in the rootfs
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	UID        uint32   `json:"uid"`
	GID        uint32   `json:"gid"`
	Hostname   string   `json:"hostname,omitempty"`
	// RootfsSuperblockDigest is RootfsRef.SuperblockDigest.
	RootfsSuperblockDigest string `json:"rootfsSuperblockDigest"`
	RootfsType             string `json:"rootfsType"` // "squashfs"
	// Network: DHCP on every ethernet interface unless Static is set.
	Network Network `json:"network"`
}

// Network configures the guest's network.
type Network struct {
	Disabled bool    `json:"disabled,omitempty"`
	Static   *Static `json:"static,omitempty"`
}

// Static is a fixed address for the first ethernet interface.
type Static struct {
	Address string   `json:"address"` // CIDR, e.g. 10.0.2.15/24
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// ModuleIndex is /uni/modules.json in the initrd: the modules it carries,
// with what the init needs to load them in order and to match devices.
type ModuleIndex struct {
	KernelRelease string   `json:"kernelRelease"`
	Modules       []Module `json:"modules"`
	// Always lists modules loaded whatever the devices (filesystems, e.g. squashfs).
	Always []string `json:"always,omitempty"`
}

// Module is one kernel module.
type Module struct {
	Name    string   `json:"name"`              // as in modinfo, with '_' (virtio_blk)
	Path    string   `json:"path"`              // in the initrd (or, in a bundle, relative to its modules dir)
	Depends []string `json:"depends,omitempty"` // names of modules that must be loaded first
	Aliases []string `json:"aliases,omitempty"` // modalias glob patterns, e.g. "virtio:d00000002v*"
}
