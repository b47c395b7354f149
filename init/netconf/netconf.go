// Package netconf brings up the guest's network: loopback always, then
// DHCPv4 on every ethernet interface, or a static address on the first one,
// and a default route. It reports the DNS servers for resolv.conf.
package netconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// dhcpAttemptTimeout is how long one DHCP exchange waits for an answer
// before it is sent again; QEMU's user network answers within milliseconds.
const dhcpAttemptTimeout = 500 * time.Millisecond

// Result is what the network ended up with.
type Result struct {
	Interfaces []string // configured ethernet interfaces, by name
	DNS        []net.IP
}

// LoopbackUp sets "lo" up; the kernel gives it 127.0.0.1 by itself.
func LoopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback: set up: %w", err)
	}
	return nil
}

// Configure configures the ethernet interfaces present now (the caller loads
// the NIC drivers first) as cfg says. ctx bounds the whole of it: DHCP that
// gets no answer gives up when ctx ends. With no ethernet interface it does
// nothing and returns an empty Result.
func Configure(ctx context.Context, cfg spec.Network) (*Result, error) {
	links, err := ethernetLinks()
	if err != nil {
		return nil, err
	}
	if len(links) == 0 {
		return &Result{}, nil
	}
	if cfg.Static != nil {
		return configureStatic(links[0], cfg.Static)
	}
	return configureDHCP(ctx, links)
}

// ethernetLinks returns the ethernet devices, sorted by name so that "the
// first" is the same on every boot.
func ethernetLinks() ([]netlink.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		a := l.Attrs()
		if a.EncapType == "ether" && l.Type() == "device" && len(a.HardwareAddr) == 6 {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attrs().Name < out[j].Attrs().Name })
	return out, nil
}

func configureStatic(link netlink.Link, st *spec.Static) (*Result, error) {
	name := link.Attrs().Name
	addr, err := netlink.ParseAddr(st.Address)
	if err != nil {
		return nil, fmt.Errorf("network.static.address %q: %w", st.Address, err)
	}
	var gw net.IP
	if st.Gateway != "" {
		if gw = net.ParseIP(st.Gateway); gw == nil {
			return nil, fmt.Errorf("network.static.gateway %q: not an IP address", st.Gateway)
		}
	}
	var dns []net.IP
	for _, d := range st.DNS {
		ip := net.ParseIP(d)
		if ip == nil {
			return nil, fmt.Errorf("network.static.dns %q: not an IP address", d)
		}
		dns = append(dns, ip)
	}
	if err := bringUp(link, addr, gw); err != nil {
		return nil, err
	}
	return &Result{Interfaces: []string{name}, DNS: dns}, nil
}

// bringUp sets link up with addr and, when gw is set, a default route.
func bringUp(link netlink.Link, addr *netlink.Addr, gw net.IP) error {
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set up: %w", name, err)
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("%s: address %s: %w", name, addr.IPNet, err)
	}
	if gw == nil {
		return nil
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw, Dst: nil}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("%s: default route via %s: %w", name, gw, err)
	}
	return nil
}

// configureDHCP runs DHCP on every link at once. The first link (by name)
// that gets a lease with a router owns the default route.
func configureDHCP(ctx context.Context, links []netlink.Link) (*Result, error) {
	type lease struct {
		addr   *netlink.Addr
		router net.IP
		dns    []net.IP
		err    error
	}
	leases := make([]lease, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, r, d, err := dhcp(ctx, l)
			leases[i] = lease{a, r, d, err}
		}()
	}
	wg.Wait()
	res := &Result{}
	var errs []error
	haveRoute := false
	for i, l := range leases {
		if l.err != nil {
			errs = append(errs, l.err)
			continue
		}
		var gw net.IP
		if !haveRoute && l.router != nil {
			gw, haveRoute = l.router, true
		}
		if err := bringUp(links[i], l.addr, gw); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Interfaces = append(res.Interfaces, links[i].Attrs().Name)
		res.DNS = appendNew(res.DNS, l.dns)
	}
	return res, errors.Join(errs...)
}

// dhcp sets link up and runs one DHCPv4 exchange on it.
func dhcp(ctx context.Context, link netlink.Link) (*netlink.Addr, net.IP, []net.IP, error) {
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: set up: %w", name, err)
	}
	retries := 1
	if dl, ok := ctx.Deadline(); ok {
		retries = max(1, int(time.Until(dl)/dhcpAttemptTimeout))
	}
	c, err := nclient4.New(name, nclient4.WithHWAddr(link.Attrs().HardwareAddr),
		nclient4.WithTimeout(dhcpAttemptTimeout), nclient4.WithRetry(retries))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: dhcp: %w", name, err)
	}
	defer c.Close()
	l, err := c.Request(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: dhcp: %w", name, err)
	}
	ack := l.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}}
	var router net.IP
	if rs := ack.Router(); len(rs) > 0 {
		router = rs[0]
	}
	return addr, router, ack.DNS(), nil
}

func appendNew(list, add []net.IP) []net.IP {
	for _, ip := range add {
		dup := false
		for _, have := range list {
			dup = dup || have.Equal(ip)
		}
		if !dup {
			list = append(list, ip)
		}
	}
	return list
}

// ResolvConf is the resolv.conf text for the DNS servers.
func ResolvConf(dns []net.IP) []byte {
	var b strings.Builder
	for _, ip := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", ip)
	}
	return []byte(b.String())
}
