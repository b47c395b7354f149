package vm

import (
	"io"
	"time"
)

// options collects what the Option funcs set; zero values mean "from the
// image config" or the documented default.
type options struct {
	boot          string
	machine       string
	accel         string
	memoryBytes   int64
	cpus          int
	ports         []PortForward
	portsSet      bool
	console       io.Writer
	log           io.Writer
	qemu          string
	firmwareDirs  []string
	extraCmdline  []string
	onExec        func(time.Time)
	timeout       time.Duration
	stopGrace     time.Duration
	poweroffGrace time.Duration
	scratchDir    string
}

// Option changes how Run boots the image.
type Option func(*options)

func newOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func defaultOptions() options {
	return options{
		boot:          BootDirect,
		accel:         AccelAuto,
		console:       io.Discard,
		log:           io.Discard,
		qemu:          "qemu-system-x86_64",
		firmwareDirs:  DefaultFirmwareDirs(),
		stopGrace:     5 * time.Second,
		poweroffGrace: 10 * time.Second,
	}
}

// WithBoot chooses BootDirect (the default), BootUEFI or BootBIOS. The
// firmware boots need disk.img in the layout.
func WithBoot(mode string) Option { return func(o *options) { o.boot = mode } }

// WithMachine chooses the QEMU machine of a direct boot: MachineQ35, or
// MachineMicrovm (refused unless the image's kernel boots there). The
// default, "", takes microvm when the kernel says it boots there and q35
// otherwise; firmware boots always use q35.
func WithMachine(machine string) Option { return func(o *options) { o.machine = machine } }

// WithAccel asks for AccelAuto (the default), AccelKVM or AccelTCG; see PickAccel.
func WithAccel(accel string) Option { return func(o *options) { o.accel = accel } }

// WithMemory overrides the image's memory size; 0 keeps the image's. Run
// refuses a size below MinMemory of the boot mode or outside the image
// bounds (spec.MinMemoryBytes to spec.MaxMemoryBytes).
func WithMemory(bytes int64) Option { return func(o *options) { o.memoryBytes = bytes } }

// WithCPUs overrides the image's CPU count; 0 keeps the image's.
func WithCPUs(n int) Option { return func(o *options) { o.cpus = n } }

// WithPorts forwards ports instead of DefaultPorts(config); several
// WithPorts add up (one per -p flag), and WithPorts() alone forwards
// nothing.
func WithPorts(ports ...PortForward) Option {
	return func(o *options) {
		o.ports = append(o.ports, ports...)
		o.portsSet = true
	}
}

// WithLog is where Run writes notices for the user, e.g. that it raised
// the memory for the boot mode (default: discarded).
func WithLog(w io.Writer) Option { return func(o *options) { o.log = w } }

// WithConsole streams the guest's serial console to w as it comes.
func WithConsole(w io.Writer) Option { return func(o *options) { o.console = w } }

// WithQEMU names the QEMU binary (a path, or a name looked up in PATH).
func WithQEMU(binary string) Option { return func(o *options) { o.qemu = binary } }

// WithFirmwareDirs replaces DefaultFirmwareDirs as the places to find OVMF.
func WithFirmwareDirs(dirs ...string) Option {
	return func(o *options) { o.firmwareDirs = append([]string(nil), dirs...) }
}

// WithKernelArgs appends arguments to the image's kernel command line
// (direct boot only: a firmware boot's command line is in disk.img).
func WithKernelArgs(args ...string) Option {
	return func(o *options) { o.extraCmdline = append(o.extraCmdline, args...) }
}

// WithExecHook calls fn with the time the init's exec line (spec.ExecMarker)
// appeared on the console, once; benchmarks measure boot time with it. fn
// runs on the console reader and must return quickly.
func WithExecHook(fn func(seen time.Time)) Option { return func(o *options) { o.onExec = fn } }

// WithTimeout stops the VM and fails after d; 0 (the default) never times out.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithStopGrace is how long a stopped QEMU gets to exit after SIGTERM
// before it is killed (default 5s).
func WithStopGrace(d time.Duration) Option { return func(o *options) { o.stopGrace = d } }

// WithScratchDir is where the run's temporary files go (the UEFI variable
// store copy); default os.TempDir.
func WithScratchDir(dir string) Option { return func(o *options) { o.scratchDir = dir } }
