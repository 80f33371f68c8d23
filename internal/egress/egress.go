// Package egress decides where the hub may send requests that tenants
// point it at: the URLs of webhook notification channels. A tenant who
// could name any address would turn the server into a scanner of the
// cluster's network (server-side request forgery), so a destination must
// be a public address, checked twice:
//
//   - at admission, on the URL as written ([Policy.CheckURL]): an IP literal
//     must be public, and a name must be a fully qualified public DNS name
//     (not a cluster service name, not localhost, not a single label that
//     the resolver's search list would complete);
//   - at connect time, on every address the name resolves to
//     ([Policy.DialContext]): the dialer resolves once, checks, and
//     connects to the checked address, so a name that resolves to a public
//     address at admission and to 10.0.0.1 later (DNS rebinding) is refused.
//
// Operators who run a receiver inside the cluster list it in the policy's
// allowlist, by address range or by exact host name.
//
// What counts as not public follows the IANA special-purpose address
// registries (RFC 6890 and its updates) for IPv4 and IPv6.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrForbidden is what a refused destination's error wraps.
var ErrForbidden = errors.New("destination not allowed")

// ErrRedirect is what a redirect that is not followed wraps.
var ErrRedirect = errors.New("redirect not followed")

// notPublic lists the ranges no webhook may reach unless allowlisted:
// IANA's special-purpose ranges (RFC 6890 and later), the ones that
// [netip.Addr]'s methods do not already cover.
var notPublic = mustPrefixes(
	"0.0.0.0/8",       // "this network" (RFC 791)
	"100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
	"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
	"192.0.2.0/24",    // TEST-NET-1 (RFC 5737)
	"198.18.0.0/15",   // benchmarking (RFC 2544)
	"198.51.100.0/24", // TEST-NET-2 (RFC 5737)
	"203.0.113.0/24",  // TEST-NET-3 (RFC 5737)
	"240.0.0.0/4",     // reserved, and the broadcast address (RFC 1112, RFC 919)
	"::/96",           // IPv4-compatible IPv6, deprecated (RFC 4291)
	"64:ff9b:1::/48",  // local-use NAT64 (RFC 8215)
	"100::/64",        // discard-only (RFC 6666)
	"2001::/23",       // IETF protocol assignments, Teredo included (RFC 2928, RFC 4380)
	"2001:db8::/32",   // documentation (RFC 3849)
	"2002::/16",       // 6to4 (RFC 3056): may embed any IPv4 address
	"3fff::/20",       // documentation (RFC 9637)
	"5f00::/16",       // segment routing SIDs (RFC 9602)
	"fec0::/10",       // site-local, deprecated (RFC 3879)
)

// clusterSuffixes are DNS suffixes that name things inside a cluster or a
// site, never a public receiver (RFC 6761 special-use names, RFC 6762's
// .local, and Kubernetes' service domains).
var clusterSuffixes = []string{
	".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".corp",
	".cluster.local", ".svc", ".svc.cluster.local", ".invalid", ".test", ".example", ".onion",
}

// Policy is where webhooks may go. The zero Policy allows public
// destinations only.
type Policy struct {
	// Allow lists address ranges that are allowed although not public,
	// such as a receiver's Service range inside the cluster.
	Allow []netip.Prefix
	// AllowHosts lists exact host names (compared without case) that are
	// allowed whatever they resolve to: the operator vouches for them.
	AllowHosts []string
	// AllowHTTP accepts http:// besides https:// (the hub's dev mode).
	AllowHTTP bool
	// Resolver resolves names at connect time; nil is net.DefaultResolver.
	Resolver Resolver
}

// Resolver resolves a host name to addresses, as [net.Resolver] does.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// StaticResolver resolves names from a fixed table, as DNS under someone
// else's control might answer; tests use it.
type StaticResolver map[string][]netip.Addr

// LookupNetIP implements Resolver: the table's addresses, or a not-found
// DNS error.
func (r StaticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if addrs, ok := r[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// ParseAllowlist reads a comma-separated allowlist of CIDR ranges, single
// addresses and host names (e.g. "10.20.0.0/16,alerts.monitoring.svc") into
// p's Allow and AllowHosts. An entry that is neither a range, an address
// nor a valid host name is an error naming it.
func (p *Policy) ParseAllowlist(list string) error {
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		switch {
		case entry == "":
		case strings.Contains(entry, "/"):
			prefix, err := netip.ParsePrefix(entry)
			if err != nil {
				return fmt.Errorf("allowlist entry %q: %w", entry, err)
			}
			p.Allow = append(p.Allow, prefix.Masked())
		default:
			if addr, err := netip.ParseAddr(entry); err == nil {
				p.Allow = append(p.Allow, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
				continue
			}
			if !validHostName(entry) {
				return fmt.Errorf("allowlist entry %q is neither an address range (10.0.0.0/8), an address nor a host name", entry)
			}
			p.AllowHosts = append(p.AllowHosts, strings.ToLower(strings.TrimSuffix(entry, ".")))
		}
	}
	return nil
}

// CheckURL tells whether raw may be a webhook's URL: absolute, https (http
// only with AllowHTTP), no user information, and a host that is a public
// address or a public DNS name, or allowlisted. The error says what to
// change; it wraps [ErrForbidden] when the destination is the fault.
func (p *Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	return p.checkParsed(u)
}

func (p *Policy) checkParsed(u *url.URL) error {
	switch {
	case u.Scheme != "https" && (!p.AllowHTTP || u.Scheme != "http"):
		return errors.New("must be an https:// URL: alerts carry spend figures (plain http only in the hub's dev mode)")
	case u.Opaque != "" || u.Host == "":
		return errors.New("must be an absolute URL with a host")
	case u.User != nil:
		return errors.New("must not carry user information (user:password@); authenticate receivers by the signature")
	}
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return fmt.Errorf("port %q is not a port number", port)
		}
	}
	return p.CheckHost(u.Hostname())
}

// CheckHost tells whether host (a name or an address, without port or
// brackets) may be a webhook's destination, as [Policy.CheckURL] does.
func (p *Policy) CheckHost(host string) error {
	if p.hostAllowed(host) {
		return nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return fmt.Errorf("%w: an address with a zone (%s) is link-local", ErrForbidden, host)
		}
		return p.CheckAddr(addr)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if !validHostName(name) {
		return fmt.Errorf("%w: %q is neither an IP address nor a DNS name", ErrForbidden, host)
	}
	if numericLabel(name[strings.LastIndexByte(name, '.')+1:]) {
		return fmt.Errorf("%w: %q ends in a number, which some resolvers read as an address; write the address "+
			"in its usual form or use a DNS name", ErrForbidden, host)
	}
	if !strings.Contains(name, ".") {
		return fmt.Errorf("%w: %q is a single label, which the resolver would complete inside the cluster; "+
			"use the receiver's fully qualified public name", ErrForbidden, host)
	}
	for _, suffix := range clusterSuffixes {
		if strings.HasSuffix("."+name, suffix) {
			return fmt.Errorf("%w: %q is a cluster or site-local name (%s); alerts go to public receivers, "+
				"or to hosts the operator allowlists", ErrForbidden, host, suffix)
		}
	}
	return nil
}

// CheckAddr tells whether addr may be connected to: public, or within
// Allow. IPv4 addresses written in IPv6 (mapped, NAT64) are judged as the
// IPv4 address they carry.
func (p *Policy) CheckAddr(addr netip.Addr) error {
	addr = addr.WithZone("")
	if p.addrAllowed(addr) {
		return nil
	}
	if reason := notPublicReason(addr); reason != "" {
		return fmt.Errorf("%w: %s is %s; alerts go to public receivers, or to ranges the operator allowlists",
			ErrForbidden, addr, reason)
	}
	return nil
}

func (p *Policy) addrAllowed(addr netip.Addr) bool {
	for _, a := range []netip.Addr{addr, addr.Unmap()} {
		for _, prefix := range p.Allow {
			if prefix.Contains(a) {
				return true
			}
		}
	}
	return false
}

func (p *Policy) hostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.AllowHosts {
		if h == host {
			return true
		}
	}
	return false
}

// notPublicReason names the class of a non-public address, or is "" for a
// public one.
func notPublicReason(addr netip.Addr) string {
	if embedded, ok := embeddedIPv4(addr); ok {
		if reason := notPublicReason(embedded); reason != "" {
			return reason + " (written as IPv6)"
		}
	}
	switch {
	case !addr.IsValid():
		return "not an address"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "link-local"
	case addr.IsMulticast():
		return "multicast"
	}
	for _, prefix := range notPublic {
		if prefix.Contains(addr) {
			return "reserved for special use"
		}
	}
	return ""
}

// embeddedIPv4 is the IPv4 address an IPv6 address carries as
// IPv4-mapped (::ffff:a.b.c.d) or through the well-known NAT64 prefix
// (64:ff9b::a.b.c.d, RFC 6052), which an IPv6-only cluster's DNS64 gives
// public IPv4 receivers.
func embeddedIPv4(addr netip.Addr) (netip.Addr, bool) {
	if !addr.Is6() {
		return netip.Addr{}, false
	}
	if addr.Is4In6() {
		return addr.Unmap(), true
	}
	b := addr.As16()
	var v4 [4]byte
	copy(v4[:], b[12:])
	zero := func(bs []byte) bool {
		for _, x := range bs {
			if x != 0 {
				return false
			}
		}
		return true
	}
	if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(b[4:12]) {
		return netip.AddrFrom4(v4), true
	}
	return netip.Addr{}, false
}

// CheckRedirect is an [http.Client] redirect policy for webhooks: a
// redirect is followed only to the same scheme and host, only while the POST
// stays a POST (307, 308), at most 5 times, and only to a URL CheckURL
// allows, so that an alert never ends up somewhere its channel does not
// name.
func (p *Policy) CheckRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) >= 5:
		return fmt.Errorf("%w: stopped after 5 redirects", ErrRedirect)
	case req.URL.Scheme != first.Scheme || req.URL.Host != first.Host:
		return fmt.Errorf("%w: refused a redirect to another host", ErrRedirect)
	case req.Method != http.MethodPost:
		return fmt.Errorf("%w: refused a redirect that turns the POST into a %s", ErrRedirect, req.Method)
	}
	return p.checkParsed(req.URL)
}

// DialContext connects as [net.Dialer.DialContext] does, to a destination
// the policy allows: it resolves the host once, refuses when any address
// is not allowed (so a name cannot mix a public address with an internal
// one), and connects to the checked addresses only. Use it as an
// [http.Transport]'s DialContext, with Proxy nil.
func (p *Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if err := p.CheckHost(host); err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if addr, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{addr}
	} else {
		resolver := p.Resolver
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		if addrs, err = resolver.LookupNetIP(ctx, ipNetwork(network), host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	if !p.hostAllowed(host) {
		for _, addr := range addrs {
			if err := p.CheckAddr(addr); err != nil {
				return nil, fmt.Errorf("%s resolves to a refused address: %w", host, err)
			}
		}
	}
	dialer := &net.Dialer{Control: p.control(host)}
	var errs []error
	for _, addr := range addrs {
		conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(addr.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// control checks the address the socket is about to connect to, a second
// time, below any resolution: nothing dialed through the policy reaches an
// address it refuses.
func (p *Policy) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		if p.hostAllowed(host) {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot read the address %q", ErrForbidden, address)
		}
		return p.CheckAddr(ap.Addr())
	}
}

func ipNetwork(network string) string {
	switch network {
	case "tcp4", "udp4":
		return "ip4"
	case "tcp6", "udp6":
		return "ip6"
	}
	return "ip"
}

// validHostName: a DNS name as RFC 1123 has it, without regard to case.
func validHostName(name string) bool {
	return len(validation.IsDNS1123Subdomain(strings.ToLower(strings.TrimSuffix(name, ".")))) == 0
}

// numericLabel tells whether a label reads as a number in the forms that
// inet_aton accepts (decimal, 0-prefixed octal, 0x hex): no top-level
// domain is numeric, so such a name is an address in disguise.
func numericLabel(label string) bool {
	l := strings.ToLower(label)
	digits := "0123456789"
	if rest, ok := strings.CutPrefix(l, "0x"); ok {
		l, digits = rest, "0123456789abcdef"
		if l == "" {
			return true
		}
	}
	return l != "" && strings.Trim(l, digits) == ""
}

func parsePort(s string) (int, error) {
	if len(s) > 5 {
		return 0, errors.New("too long")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, errors.New("out of range")
	}
	return n, nil
}

func mustPrefixes(ranges ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ranges))
	for i, r := range ranges {
		out[i] = netip.MustParsePrefix(r)
	}
	return out
}
