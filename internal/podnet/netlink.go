package podnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// setUpNetwork does, over rtnetlink, what these would:
//
//	ip link set lo up
//	ip route add local 192.0.2.0/24 dev lo table local     # PodCIDR
//	ip route add local 198.51.100.0/24 dev lo table local  # NodeCIDR
//	ip addr add 198.51.100.1/32 dev lo                     # NodeIP
//	ip route add default dev lo
//	ip route add unreachable default table 100
//	ip rule add pref 32000 table 100
//
// A local route makes every address of its prefix an address of this host, with no need to add
// each to an interface. The rest makes the namespace look like a host with a network, for programs
// that look for the host's address: kube-apiserver, bound to loopback, advertises the global
// address on the interface of the default route and refuses to start without one. That default
// route is only for show: the rule sends every lookup that is not local to a table that answers
// "no route to host" at once (through lo, a packet to the outside would vanish and its connect
// hang until a timeout).
func setUpNetwork() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	index := binary.NativeEndian.AppendUint32(nil, uint32(lo.Index))
	nl, err := dialNetlink()
	if err != nil {
		return err
	}
	defer nl.close()
	const create = unix.NLM_F_CREATE | unix.NLM_F_EXCL

	link := make([]byte, unix.SizeofIfInfomsg)
	link[0] = unix.AF_UNSPEC
	copy(link[4:], index)
	binary.NativeEndian.PutUint32(link[8:], unix.IFF_UP)  // flags
	binary.NativeEndian.PutUint32(link[12:], unix.IFF_UP) // change mask
	if err := nl.do(unix.RTM_NEWLINK, 0, link); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}

	for _, cidr := range []string{PodCIDR, NodeCIDR} {
		p := netip.MustParsePrefix(cidr)
		dst := p.Addr().As4()
		r := rtmsg(p.Bits(), unix.RT_TABLE_LOCAL, unix.RT_SCOPE_HOST, unix.RTN_LOCAL)
		r = appendAttr(r, unix.RTA_DST, dst[:])
		r = appendAttr(r, unix.RTA_OIF, index)
		if err := nl.do(unix.RTM_NEWROUTE, create, r); err != nil {
			return fmt.Errorf("adding the local route %s dev lo: %w", cidr, err)
		}
	}

	node := netip.MustParseAddr(NodeIP).As4()
	addr := make([]byte, unix.SizeofIfAddrmsg)
	addr[0] = unix.AF_INET
	addr[1] = 32
	addr[3] = unix.RT_SCOPE_UNIVERSE
	copy(addr[4:], index)
	addr = appendAttr(addr, unix.IFA_LOCAL, node[:])
	addr = appendAttr(addr, unix.IFA_ADDRESS, node[:])
	if err := nl.do(unix.RTM_NEWADDR, create, addr); err != nil {
		return fmt.Errorf("adding %s/32 to lo: %w", NodeIP, err)
	}

	def := appendAttr(rtmsg(0, unix.RT_TABLE_MAIN, unix.RT_SCOPE_LINK, unix.RTN_UNICAST), unix.RTA_OIF, index)
	if err := nl.do(unix.RTM_NEWROUTE, create, def); err != nil {
		return fmt.Errorf("adding the default route dev lo: %w", err)
	}
	unreachable := rtmsg(0, unreachableTable, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNREACHABLE)
	if err := nl.do(unix.RTM_NEWROUTE, create, unreachable); err != nil {
		return fmt.Errorf("adding the unreachable default route: %w", err)
	}
	rule := make([]byte, 12) // struct fib_rule_hdr
	rule[0] = unix.AF_INET
	rule[4] = unreachableTable
	rule[7] = unix.FR_ACT_TO_TBL
	rule = appendAttr(rule, unix.FRA_PRIORITY, binary.NativeEndian.AppendUint32(nil, unreachableRulePref))
	rule = appendAttr(rule, unix.FRA_TABLE, binary.NativeEndian.AppendUint32(nil, unreachableTable))
	if err := nl.do(unix.RTM_NEWRULE, create, rule); err != nil {
		return fmt.Errorf("adding the rule to the unreachable table: %w", err)
	}
	return nil
}

const (
	// unreachableTable holds the one route "unreachable default".
	unreachableTable = 100
	// unreachableRulePref puts its rule after the local table's (0), before the main table's (32766).
	unreachableRulePref = 32000
)

// rtmsg is a struct rtmsg for an IPv4 route with protocol boot, as ip route add sets it.
func rtmsg(dstLen int, table, scope, typ uint8) []byte {
	r := make([]byte, unix.SizeofRtMsg)
	r[0] = unix.AF_INET
	r[1] = byte(dstLen)
	r[4] = table
	r[5] = unix.RTPROT_BOOT
	r[6] = scope
	r[7] = typ
	return r
}

type netlinkConn struct {
	fd  int
	seq uint32
}

func dialNetlink() (*netlinkConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("binding a netlink socket: %w", err)
	}
	return &netlinkConn{fd: fd}, nil
}

func (c *netlinkConn) close() { _ = unix.Close(c.fd) }

// do sends one request and waits for the kernel's acknowledgement.
func (c *netlinkConn) do(typ uint16, flags uint16, body []byte) error {
	c.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], c.seq)
	msg = append(msg, body...)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}

	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			size := binary.NativeEndian.Uint32(b[0:])
			if size < unix.SizeofNlMsghdr || int(size) > len(b) {
				return errors.New("netlink: malformed reply")
			}
			typ, seq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
			if seq == c.seq && typ == unix.NLMSG_ERROR {
				if size < unix.SizeofNlMsghdr+4 {
					return errors.New("netlink: short error reply")
				}
				if errno := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); errno != 0 {
					return unix.Errno(-errno)
				}
				return nil // the acknowledgement
			}
			b = b[min(nlmAlign(int(size)), len(b)):]
		}
	}
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	return append(b, make([]byte, nlmAlign(n)-n)...)
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }
