package vm

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func TestParsePortForward(t *testing.T) {
	good := map[string]PortForward{
		"8080":                  {HostPort: 8080, GuestPort: 8080, Protocol: TCP},
		"8080:80":               {HostPort: 8080, GuestPort: 80, Protocol: TCP},
		"0.0.0.0:8080:80":       {HostIP: netip.IPv4Unspecified(), HostPort: 8080, GuestPort: 80, Protocol: TCP},
		"127.0.0.1:53:5353/udp": {HostIP: DefaultHostIP(), HostPort: 53, GuestPort: 5353, Protocol: UDP},
		"9000:9000/TCP":         {HostPort: 9000, GuestPort: 9000, Protocol: TCP},
	}
	for in, want := range good {
		got, err := ParsePortForward(in)
		if err != nil {
			t.Errorf("ParsePortForward(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("ParsePortForward(%q) = %+v, want %+v", in, got, want)
		}
	}
	bad := map[string]string{
		"":                 "host port",
		"80:":              "guest port",
		"0:80":             "between 1 and 65535",
		"70000:80":         "between 1 and 65535",
		"80:80/sctp":       "neither tcp nor udp",
		"x:80":             "host port",
		"localhost:80:80":  "not an IPv4 address",
		"::1:80:80":        "too many",
		"1.2.3.4:80:80:90": "too many",
		"80:80/tcp,guestfwd=tcp:10.0.2.100:1-cmd:touch /tmp/x": "neither tcp nor udp",
		"0.0.0.0,smb=x:80:80":     "not an IPv4 address",
		"01.2.3.4:80:80":          "not an IPv4 address",
		"80,hostfwd=tcp-1:80":     "host port",
		"80:80,hostfwd=tcp":       "guest port",
		"99999999999999999999:80": "host port",
	}
	for in, wantMsg := range bad {
		_, err := ParsePortForward(in)
		if err == nil {
			t.Errorf("ParsePortForward(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), wantMsg) || !strings.Contains(err.Error(), strconv.Quote(in)) {
			t.Errorf("ParsePortForward(%q) error %q: want it to quote the input and say %q", in, err, wantMsg)
		}
	}
}

func TestPortForwardStringRoundTrips(t *testing.T) {
	p := PortForward{HostPort: 8080, GuestPort: 80, Protocol: UDP}
	if got := p.String(); got != "127.0.0.1:8080:80/udp" {
		t.Fatalf("String() = %q", got)
	}
	back, err := ParsePortForward(p.String())
	if err != nil || back.HostPort != 8080 || back.GuestPort != 80 || back.Protocol != UDP || back.HostIP != DefaultHostIP() {
		t.Fatalf("round trip of %s gave %+v, %v", p, back, err)
	}
}

func TestDefaultPortsForwardsEveryExposedPortOnLoopback(t *testing.T) {
	cfg := spec.ImageConfig{ExposedPorts: []spec.Port{{Port: 8083, Protocol: "tcp"}, {Port: 53, Protocol: "udp"}}}
	want := []PortForward{
		{HostPort: 8083, GuestPort: 8083, Protocol: TCP},
		{HostPort: 53, GuestPort: 53, Protocol: UDP},
	}
	got, err := DefaultPorts(cfg)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultPorts = %+v, %v; want %+v", got, err, want)
	}
	for _, p := range got {
		if p.hostIP() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("%s listens on %s, want loopback", p, p.hostIP())
		}
	}
	cfg.ExposedPorts = []spec.Port{{Port: 80, Protocol: "tcp,hostfwd=tcp:0.0.0.0:1-:1"}}
	if _, err := DefaultPorts(cfg); err == nil || !strings.Contains(err.Error(), "exposedPorts[0].protocol") {
		t.Fatalf("a hostile protocol: %v", err)
	}
}

func TestDefaultPortsForwardsAtMost64(t *testing.T) {
	var cfg spec.ImageConfig
	for p := 1; p <= 65535; p++ {
		cfg.ExposedPorts = append(cfg.ExposedPorts, spec.Port{Port: uint16(p), Protocol: "tcp"})
	}
	_, err := DefaultPorts(cfg)
	if !errors.Is(err, ErrTooManyPorts) || !strings.Contains(err.Error(), "exposes 65535 ports") || !strings.Contains(err.Error(), "-p") {
		t.Fatalf("EXPOSE 1-65535: %v; want a refusal that points at -p", err)
	}
	cfg.ExposedPorts = cfg.ExposedPorts[:MaxDefaultPorts]
	if got, err := DefaultPorts(cfg); err != nil || len(got) != MaxDefaultPorts {
		t.Fatalf("%d ports: %d forwards, %v", MaxDefaultPorts, len(got), err)
	}
}

func TestCheckPortsFreeNamesTheBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := uint16(ln.Addr().(*net.TCPAddr).Port)
	err = checkPortsFree([]PortForward{{HostPort: busy, GuestPort: 80}})
	if err == nil {
		t.Fatalf("port %d is in use but was reported free", busy)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(int(busy))) {
		t.Fatalf("error %q does not name port %d", err, busy)
	}
	ln.Close()
	if err := checkPortsFree([]PortForward{{HostPort: busy, GuestPort: 80}}); err != nil {
		t.Fatalf("port %d free again but: %v", busy, err)
	}
}

func TestCheckNoDuplicateHostPorts(t *testing.T) {
	dup := []PortForward{{HostPort: 80, GuestPort: 80}, {HostPort: 80, GuestPort: 81, Protocol: TCP}}
	if err := checkNoDuplicateHostPorts(dup); err == nil || !strings.Contains(err.Error(), "80/tcp") {
		t.Fatalf("duplicate host port: got %v", err)
	}
	ok := []PortForward{{HostPort: 53, GuestPort: 53, Protocol: TCP}, {HostPort: 53, GuestPort: 53, Protocol: UDP}}
	if err := checkNoDuplicateHostPorts(ok); err != nil {
		t.Fatalf("tcp and udp on one port are distinct: %v", err)
	}
}

func TestWithPortsAddsUp(t *testing.T) {
	a, b := PortForward{HostPort: 1, GuestPort: 1}, PortForward{HostPort: 2, GuestPort: 2, Protocol: UDP}
	o := newOptions([]Option{WithPorts(a), WithPorts(b)})
	if !reflect.DeepEqual(o.ports, []PortForward{a, b}) || !o.portsSet {
		t.Fatalf("two WithPorts: %+v", o.ports)
	}
	if o := newOptions([]Option{WithPorts()}); len(o.ports) != 0 || !o.portsSet {
		t.Fatalf("WithPorts(): %+v", o)
	}
}
