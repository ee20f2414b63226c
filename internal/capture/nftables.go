package capture

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family ip) that holds every rule capture makes.
const TableName = "sluice"

// Apply replaces the table TableName of the network namespace with the rules of c, in one
// transaction: running it again (a restarted init container) leaves the same rules, never twice.
// opts choose the namespace (nftables.WithNetNSFd); by default it is the caller's.
//
// In nft syntax:
//
//	table ip sluice {
//	  chain prerouting { type nat hook prerouting priority dstnat;
//	    meta l4proto != tcp return
//	    iifname "lo" return
//	    tcp dport <each excluded inbound port> return
//	    redirect to :<InboundPort>
//	  }
//	  chain output { type nat hook output priority -100;
//	    meta l4proto != tcp return
//	    meta skuid <ProxyUID> return
//	    ip daddr 127.0.0.0/8 return
//	    ip daddr <each excluded CIDR> return
//	    tcp dport <each excluded outbound port> return
//	    redirect to :<OutboundPort>
//	  }
//	}
func Apply(c Config, opts ...nftables.ConnOption) error {
	if err := c.Validate(); err != nil {
		return err
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("capture: opening netlink: %w", err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	// add, delete, add: the delete cannot fail for a missing table, and the batch is atomic.
	conn.AddTable(table)
	conn.DelTable(table)
	conn.AddTable(table)
	pre := conn.AddChain(&nftables.Chain{
		Name: "prerouting", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
	})
	out := conn.AddChain(&nftables.Chain{
		Name: "output", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	for _, r := range inboundRules(c) {
		conn.AddRule(&nftables.Rule{Table: table, Chain: pre, Exprs: r})
	}
	for _, r := range outboundRules(c) {
		conn.AddRule(&nftables.Rule{Table: table, Chain: out, Exprs: r})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("capture: programming nftables (the container needs the NET_ADMIN capability): %w", err)
	}
	return nil
}

// Remove deletes the table TableName, if there is one.
func Remove(opts ...nftables.ConnOption) error {
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("capture: opening netlink: %w", err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	conn.AddTable(table)
	conn.DelTable(table)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("capture: removing table %s: %w", TableName, err)
	}
	return nil
}

func inboundRules(c Config) [][]expr.Any {
	rules := [][]expr.Any{
		ret(notTCP()...),
		ret(ifname(expr.MetaKeyIIFNAME, "lo")...),
	}
	for _, p := range c.ExcludeInboundPorts {
		rules = append(rules, ret(dport(p)...))
	}
	return append(rules, redirect(c.InboundPort))
}

func outboundRules(c Config) [][]expr.Any {
	rules := [][]expr.Any{
		ret(notTCP()...),
		ret(&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(c.ProxyUID)}),
		ret(daddrIn(netip.MustParsePrefix("127.0.0.0/8"))...),
	}
	for _, p := range c.ExcludeOutboundCIDRs {
		rules = append(rules, ret(daddrIn(p)...))
	}
	for _, p := range c.ExcludeOutboundPorts {
		rules = append(rules, ret(dport(p)...))
	}
	return append(rules, redirect(c.OutboundPort))
}

// ret ends a rule whose matches all hold with "return": the packet leaves the chain unchanged.
func ret(match ...expr.Any) []expr.Any {
	return append(match, &expr.Verdict{Kind: expr.VerdictReturn})
}

func notTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

// ifname matches an interface name as nft does: NUL-padded to IFNAMSIZ.
func ifname(key expr.MetaKey, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}

// dport matches a TCP destination port; the rules before it have returned what is not TCP.
func dport(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p)},
	}
}

// daddrIn matches an IPv4 destination inside p.
func daddrIn(p netip.Prefix) []expr.Any {
	mask := netip.MustParseAddr("255.255.255.255").As4()
	bits := p.Bits()
	for i := range mask {
		keep := min(max(bits-8*i, 0), 8)
		mask[i] = byte(0xff << (8 - keep))
	}
	addr := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
	}
}

// redirect sends the connection to a local port (DNAT to the address it arrived on).
func redirect(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}
