package vm

import (
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func TestParsePortForward(t *testing.T) {
	good := map[string]PortForward{
		"8080":                  {HostPort: 8080, GuestPort: 8080, Protocol: "tcp"},
		"8080:80":               {HostPort: 8080, GuestPort: 80, Protocol: "tcp"},
		"0.0.0.0:8080:80":       {HostIP: "0.0.0.0", HostPort: 8080, GuestPort: 80, Protocol: "tcp"},
		"127.0.0.1:53:5353/udp": {HostIP: "127.0.0.1", HostPort: 53, GuestPort: 5353, Protocol: "udp"},
		"9000:9000/TCP":         {HostPort: 9000, GuestPort: 9000, Protocol: "tcp"},
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
	p := PortForward{HostPort: 8080, GuestPort: 80, Protocol: "udp"}
	if got := p.String(); got != "127.0.0.1:8080:80/udp" {
		t.Fatalf("String() = %q", got)
	}
	back, err := ParsePortForward(p.String())
	if err != nil || back.HostPort != 8080 || back.GuestPort != 80 || back.Protocol != "udp" || back.HostIP != DefaultHostIP {
		t.Fatalf("round trip of %s gave %+v, %v", p, back, err)
	}
}

func TestDefaultPortsForwardsEveryExposedPortOnLoopback(t *testing.T) {
	cfg := spec.ImageConfig{ExposedPorts: []spec.Port{{Port: 8083, Protocol: "tcp"}, {Port: 53, Protocol: "udp"}, {Port: 9000}}}
	want := []PortForward{
		{HostPort: 8083, GuestPort: 8083, Protocol: "tcp"},
		{HostPort: 53, GuestPort: 53, Protocol: "udp"},
		{HostPort: 9000, GuestPort: 9000, Protocol: "tcp"},
	}
	got := DefaultPorts(cfg)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultPorts = %+v, want %+v", got, want)
	}
	for _, p := range got {
		if p.hostIP() != "127.0.0.1" {
			t.Errorf("%s listens on %s, want loopback", p, p.hostIP())
		}
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
	dup := []PortForward{{HostPort: 80, GuestPort: 80}, {HostPort: 80, GuestPort: 81, Protocol: "tcp"}}
	if err := checkNoDuplicateHostPorts(dup); err == nil || !strings.Contains(err.Error(), "80/tcp") {
		t.Fatalf("duplicate host port: got %v", err)
	}
	ok := []PortForward{{HostPort: 53, GuestPort: 53, Protocol: "tcp"}, {HostPort: 53, GuestPort: 53, Protocol: "udp"}}
	if err := checkNoDuplicateHostPorts(ok); err != nil {
		t.Fatalf("tcp and udp on one port are distinct: %v", err)
	}
}
