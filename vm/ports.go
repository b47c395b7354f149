package vm

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// DefaultHostIP is where forwarded ports listen unless a forward names an
// address. Docker and ops bind 0.0.0.0; we choose loopback so that running a
// unikernel never exposes it to the network by surprise. Ask for
// "0.0.0.0:8080:8080" to publish it.
const DefaultHostIP = "127.0.0.1"

// PortForward forwards a host port to a guest port through QEMU's user
// network (hostfwd).
type PortForward struct {
	HostIP    string // IPv4 address to listen on; "" means DefaultHostIP
	HostPort  uint16
	GuestPort uint16
	Protocol  string // "tcp" or "udp"
}

// String gives the forward back in the form ParsePortForward reads.
func (p PortForward) String() string {
	return fmt.Sprintf("%s:%d:%d/%s", p.hostIP(), p.HostPort, p.GuestPort, p.protocol())
}

func (p PortForward) hostIP() string {
	if p.HostIP == "" {
		return DefaultHostIP
	}
	return p.HostIP
}

func (p PortForward) protocol() string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// ParsePortForward reads "[IP:]HOST:GUEST[/tcp|/udp]", as `docker run -p`
// does; a bare "PORT" forwards the same port on both sides.
func ParsePortForward(s string) (PortForward, error) {
	fail := func(format string, args ...any) (PortForward, error) {
		return PortForward{}, fmt.Errorf("port forward %q: %s (want [IP:]HOST:GUEST[/tcp|/udp])", s, fmt.Sprintf(format, args...))
	}
	addrs, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return fail("protocol %q is neither tcp nor udp", proto)
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
	if ip != "" {
		parsed := net.ParseIP(ip)
		if parsed == nil || parsed.To4() == nil {
			return fail("host address %q is not an IPv4 address", ip)
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
	return PortForward{HostIP: ip, HostPort: hostPort, GuestPort: guestPort, Protocol: proto}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number between 1 and 65535", s)
	}
	return uint16(n), nil
}

// DefaultPorts forwards every EXPOSEd port of the image to the same port on
// DefaultHostIP (loopback).
func DefaultPorts(cfg spec.ImageConfig) []PortForward {
	var ports []PortForward
	for _, p := range cfg.ExposedPorts {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		ports = append(ports, PortForward{HostPort: p.Port, GuestPort: p.Port, Protocol: proto})
	}
	return ports
}

// checkPortsFree binds every host port once, so that a port in use is
// reported by name before QEMU starts rather than as a QEMU failure.
func checkPortsFree(ports []PortForward) error {
	for _, p := range ports {
		addr := net.JoinHostPort(p.hostIP(), strconv.Itoa(int(p.HostPort)))
		var err error
		if p.protocol() == "udp" {
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
			return fmt.Errorf("host port %s/%s (forward %s) is not free: %w", addr, p.protocol(), p, err)
		}
	}
	return nil
}

// checkNoDuplicateHostPorts rejects two forwards of one host port, which
// QEMU would report only as a failed hostfwd rule.
func checkNoDuplicateHostPorts(ports []PortForward) error {
	seen := map[string]PortForward{}
	for _, p := range ports {
		key := fmt.Sprintf("%s/%d", p.protocol(), p.HostPort)
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("host port %d/%s is forwarded twice (%s and %s)", p.HostPort, p.protocol(), prev, p)
		}
		seen[key] = p
	}
	return nil
}
