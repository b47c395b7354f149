package vm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// MaxDefaultPorts bounds the forwards made from an image's EXPOSEd ports
// when none are asked for: each is a listening socket on the host, and an
// `EXPOSE 1-65535` must not open them all.
const MaxDefaultPorts = 64

// ErrTooManyPorts is wrapped by DefaultPorts' error when an image exposes
// more than MaxDefaultPorts ports.
var ErrTooManyPorts = errors.New("too many exposed ports to forward by default")

// DefaultHostIP is where forwarded ports listen unless a forward names an
// address: 127.0.0.1. Docker and ops bind 0.0.0.0; we choose loopback so
// that running a unikernel never exposes it to the network by surprise. Ask
// for "0.0.0.0:8080:8080" to publish it.
func DefaultHostIP() netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 1}) }

// Protocol is tcp or udp; nothing else can reach QEMU's command line.
type Protocol uint8

const (
	TCP Protocol = iota
	UDP
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// ParseProtocol reads "tcp" or "udp" exactly.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("protocol %s is neither tcp nor udp", strconv.Quote(s))
}

// PortForward forwards a host port to a guest port through QEMU's user
// network (hostfwd). Every field is typed: QEMU's option syntax cannot be
// smuggled in through one.
type PortForward struct {
	HostIP    netip.Addr // an IPv4 address to listen on; the zero Addr means DefaultHostIP
	HostPort  uint16
	GuestPort uint16
	Protocol  Protocol
}

// String gives the forward back in the form ParsePortForward reads.
func (p PortForward) String() string {
	return fmt.Sprintf("%s:%d:%d/%s", p.hostIP(), p.HostPort, p.GuestPort, p.Protocol)
}

func (p PortForward) hostIP() netip.Addr {
	if !p.HostIP.IsValid() {
		return DefaultHostIP()
	}
	return p.HostIP
}

// check refuses a forward QEMU could not take as written: port 0, another
// protocol, an address that is not plain IPv4.
func (p PortForward) check() error {
	if p.HostPort == 0 || p.GuestPort == 0 {
		return fmt.Errorf("port forward %s: port 0", p)
	}
	if p.Protocol != TCP && p.Protocol != UDP {
		return fmt.Errorf("port forward %s: unknown protocol", p)
	}
	if ip := p.hostIP(); !ip.Is4() {
		return fmt.Errorf("port forward %s: host address %s is not IPv4 (QEMU's hostfwd takes IPv4 only)", p, ip)
	}
	return nil
}

// ParsePortForward reads "[IP:]HOST:GUEST[/tcp|/udp]", as `docker run -p`
// does; a bare "PORT" forwards the same port on both sides.
func ParsePortForward(s string) (PortForward, error) {
	fail := func(format string, args ...any) (PortForward, error) {
		return PortForward{}, fmt.Errorf("port forward %s: %s (want [IP:]HOST:GUEST[/tcp|/udp])", strconv.Quote(s), fmt.Sprintf(format, args...))
	}
	addrs, protoName, hasProto := strings.Cut(s, "/")
	if !hasProto {
		protoName = "tcp"
	}
	proto, err := ParseProtocol(strings.ToLower(protoName))
	if err != nil {
		return fail("%v", err)
	}
	fields := strings.Split(addrs, ":")
	var ip, host, guest string
	switch len(fields) {
	case 1:
		host, guest = fields[0], fields[0]
	case 2:
		host, guest = fields[0], fields[1]
	case 3:
		ip, host, guest = fields[0], fields[1], fields[2]
	default:
		return fail("too many ':' (IPv6 host addresses are not supported by QEMU's hostfwd)")
	}
	var addr netip.Addr
	if ip != "" {
		if addr, err = netip.ParseAddr(ip); err != nil || !addr.Is4() {
			return fail("host address %s is not an IPv4 address", strconv.Quote(ip))
		}
	}
	hostPort, err := parsePort(host)
	if err != nil {
		return fail("host port: %v", err)
	}
	guestPort, err := parsePort(guest)
	if err != nil {
		return fail("guest port: %v", err)
	}
	return PortForward{HostIP: addr, HostPort: hostPort, GuestPort: guestPort, Protocol: proto}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s is not a port number between 1 and 65535", strconv.Quote(s))
	}
	return uint16(n), nil
}

// DefaultPorts forwards every EXPOSEd port of the image to the same port on
// DefaultHostIP (loopback), at most MaxDefaultPorts of them.
func DefaultPorts(cfg spec.ImageConfig) ([]PortForward, error) {
	if n := len(cfg.ExposedPorts); n > MaxDefaultPorts {
		return nil, fmt.Errorf("the image exposes %d ports, and at most %d are forwarded by default: %w; choose the ones you need with -p HOST:GUEST[/udp]", n, MaxDefaultPorts, ErrTooManyPorts)
	}
	ports := make([]PortForward, 0, len(cfg.ExposedPorts))
	for i, p := range cfg.ExposedPorts {
		proto, err := ParseProtocol(p.Protocol)
		if err != nil {
			return nil, fmt.Errorf("exposedPorts[%d].protocol: %w", i, err)
		}
		if p.Port == 0 {
			return nil, fmt.Errorf("exposedPorts[%d].port: 0 is not a port", i)
		}
		ports = append(ports, PortForward{HostPort: p.Port, GuestPort: p.Port, Protocol: proto})
	}
	return ports, nil
}

// checkPortsFree binds every host port once, so that a port in use is
// reported by name before QEMU starts rather than as a QEMU failure.
func checkPortsFree(ports []PortForward) error {
	for _, p := range ports {
		addr := net.JoinHostPort(p.hostIP().String(), strconv.Itoa(int(p.HostPort)))
		var err error
		if p.Protocol == UDP {
			var conn net.PacketConn
			if conn, err = net.ListenPacket("udp4", addr); err == nil {
				conn.Close()
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen("tcp4", addr); err == nil {
				ln.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("host port %s/%s (forward %s) is not free: %w", addr, p.Protocol, p, err)
		}
	}
	return nil
}

// checkNoDuplicateHostPorts rejects two forwards of one host port, which
// QEMU would report only as a failed hostfwd rule.
func checkNoDuplicateHostPorts(ports []PortForward) error {
	type key struct {
		proto Protocol
		port  uint16
	}
	seen := map[key]PortForward{}
	for _, p := range ports {
		k := key{p.Protocol, p.HostPort}
		if prev, ok := seen[k]; ok {
			return fmt.Errorf("host port %d/%s is forwarded twice (%s and %s)", p.HostPort, p.Protocol, prev, p)
		}
		seen[k] = p
	}
	return nil
}
