package egress

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	refused := []string{
		"https://10.96.0.1/", "https://127.0.0.1:8443/x", "https://[::1]/", "https://[::ffff:127.0.0.1]/",
		"https://[::ffff:a9fe:a9fe]/", "https://169.254.169.254/latest/meta-data", "https://[fe80::1%25eth0]/",
		"https://192.168.1.1/", "https://172.16.0.1/", "https://100.64.0.1/", "https://0.0.0.0/", "https://[::]/",
		"https://[fd00::1]/", "https://[64:ff9b::a00:1]/", "https://224.0.0.1/", "https://255.255.255.255/",
		"https://svc.ns.svc:8443/", "https://svc.ns.svc.cluster.local/", "https://kubernetes/", "https://localhost/",
		"https://LOCALHOST./", "https://printer.local/", "https://db.corp/", "https://metadata.google.internal/",
		"https://2130706433/", "https://0x7f000001/", "https://0177.0.0.1/", "https://127.1/", "https://10.0.0.1./",
		"https://a.b.0x7f/", "https://user:pass@example.com/", "http://example.com/", "ftp://example.com/",
		"https:///path", "https://exa mple.com/", "https://example.com:0/", "https://example.com:99999/",
	}
	p := &Policy{}
	for _, raw := range refused {
		if err := p.CheckURL(raw); err == nil {
			t.Errorf("CheckURL(%q) allowed it", raw)
		}
	}
	allowed := []string{
		"https://hooks.example.com/alerts", "https://93.184.215.14/", "https://[2606:4700::1111]/",
		"https://[64:ff9b::5db8:d70e]/", "https://hooks.slack.com:443/services/T0/B0/x", "https://EXAMPLE.com./",
	}
	for _, raw := range allowed {
		if err := p.CheckURL(raw); err != nil {
			t.Errorf("CheckURL(%q): %v", raw, err)
		}
	}
}

func TestAllowlist(t *testing.T) {
	p := &Policy{}
	if err := p.ParseAllowlist("10.20.0.0/16, alerts.monitoring.svc ,::1"); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"https://10.20.3.4/", "https://alerts.monitoring.svc/", "https://ALERTS.monitoring.svc./", "https://[::1]/"} {
		if err := p.CheckURL(raw); err != nil {
			t.Errorf("CheckURL(%q) with the allowlist: %v", raw, err)
		}
	}
	for _, raw := range []string{"https://10.21.0.1/", "https://other.monitoring.svc/", "https://127.0.0.1/"} {
		if err := p.CheckURL(raw); err == nil {
			t.Errorf("CheckURL(%q) allowed what the allowlist does not name", raw)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "not a host", "-x.example"} {
		if err := (&Policy{}).ParseAllowlist(bad); err == nil {
			t.Errorf("ParseAllowlist(%q) took it", bad)
		}
	}
}

// TestDialRefusesWhatANameResolvesTo: a public-looking name that resolves
// to loopback (DNS rebinding), or to a public and a private address, is
// refused when connecting and nothing reaches the receiver; allowlisted,
// the same receiver is reached.
func TestDialRefusesWhatANameResolvesTo(t *testing.T) {
	reached := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }))
	defer rcv.Close()
	_, port, _ := net.SplitHostPort(rcv.Listener.Addr().String())
	resolver := StaticResolver{
		"rebind.example.com": {netip.MustParseAddr("127.0.0.1")},
		"mixed.example.com":  {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")},
	}
	post := func(p *Policy, host string) error {
		c := &http.Client{Transport: &http.Transport{DialContext: p.DialContext}, CheckRedirect: p.CheckRedirect}
		resp, err := c.Post("http://"+net.JoinHostPort(host, port)+"/", "application/json", nil)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	strict := &Policy{AllowHTTP: true, Resolver: resolver}
	for _, host := range []string{"rebind.example.com", "mixed.example.com", "127.0.0.1"} {
		if err := post(strict, host); !errors.Is(err, ErrForbidden) {
			t.Errorf("posting to %s: %v, want a refusal", host, err)
		}
	}
	if reached != 0 {
		t.Fatalf("the receiver was reached %d times", reached)
	}
	open := &Policy{AllowHTTP: true, Resolver: resolver, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if err := post(open, "rebind.example.com"); err != nil || reached != 1 {
		t.Fatalf("allowlisted: %v, reached %d times", err, reached)
	}
}

// TestControlRefusesTheSocketAddress: below resolution, the socket's
// address is checked again.
func TestControlRefusesTheSocketAddress(t *testing.T) {
	p := &Policy{}
	if err := p.control("example.com")("tcp4", "10.0.0.1:443", nil); !errors.Is(err, ErrForbidden) {
		t.Fatalf("control: %v", err)
	}
	if err := p.control("example.com")("tcp6", "[2606:4700::1111]:443", nil); err != nil {
		t.Fatalf("control: %v", err)
	}
}

// internalRanges are the ranges no webhook may reach, written apart from
// the package's own list.
var internalRanges = func() []netip.Prefix {
	ranges := []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.168.0.0/16", "224.0.0.0/3", "::/127", "fc00::/7", "fe80::/10", "ff00::/8"}
	out := make([]netip.Prefix, len(ranges))
	for i, r := range ranges {
		out[i] = netip.MustParsePrefix(r)
	}
	return out
}()

// isInternal: a in internalRanges, itself or as the IPv4 address it
// carries (mapped, NAT64).
func isInternal(a netip.Addr) bool {
	a = a.WithZone("")
	for _, x := range []netip.Addr{a, a.Unmap()} {
		for _, p := range internalRanges {
			if p.Contains(x) {
				return true
			}
		}
	}
	if b := a.As16(); a.Is6() && b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b {
		return isInternal(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	return false
}

// FuzzCheckURL: whatever URL and redirect CheckURL and CheckRedirect
// accept, the host is no address (in any form inet_aton or net/netip
// reads) that an independent list calls internal, and no cluster name.
func FuzzCheckURL(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/", "https://10.0.0.1/", "https://[::ffff:10.0.0.1]/", "https://0x0a000001/",
		"https://%31%30.0.0.1/", "https://[fe80::1%25en0]/", "https://127.0.0.1.nip.io/", "https://①②⑦.0.0.1/",
		"https://svc.ns.svc/", "https://example.com:443@10.0.0.1/", "https://[64:ff9b::7f00:1]/",
	} {
		f.Add(seed, "/next")
		f.Add(seed, "https://10.0.0.1/")
	}
	p := &Policy{}
	f.Fuzz(func(t *testing.T, raw, location string) {
		if p.CheckURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("allowed %q, which net/url cannot parse", raw)
		}
		checkHost(t, raw, u.Hostname())

		next, err := url.Parse(location)
		if err != nil {
			return
		}
		target := u.ResolveReference(next)
		first := &http.Request{Method: http.MethodPost, URL: u}
		if p.CheckRedirect(&http.Request{Method: http.MethodPost, URL: target}, []*http.Request{first}) == nil {
			if target.Host != u.Host {
				t.Fatalf("followed a redirect from %q to another host, %q", raw, target)
			}
			checkHost(t, target.String(), target.Hostname())
		}
	})
}

func checkHost(t *testing.T, raw, host string) {
	t.Helper()
	if a, err := netip.ParseAddr(host); err == nil && isInternal(a) {
		t.Fatalf("allowed %q: %s is internal", raw, a)
	}
	if a, ok := inetAton(host); ok && isInternal(a) {
		t.Fatalf("allowed %q: inet_aton reads %s, which is internal", raw, a)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || !strings.Contains(name, ".") && !strings.Contains(name, ":") {
		t.Fatalf("allowed %q: %q is a name the cluster's resolver completes", raw, host)
	}
	for _, suffix := range []string{".svc", ".cluster.local", ".local", ".localhost", ".internal"} {
		if strings.HasSuffix(name, suffix) {
			t.Fatalf("allowed %q: %q is a cluster name", raw, host)
		}
	}
}

// inetAton reads an IPv4 address as the C library's inet_aton does: one to
// four parts, each decimal, octal (leading 0) or hex (0x), the last filling
// the remaining bytes.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		base, digits := 10, part
		switch {
		case strings.HasPrefix(strings.ToLower(part), "0x"):
			base, digits = 16, part[2:]
			if digits == "" {
				digits = "0"
			}
		case len(part) > 1 && part[0] == '0':
			base, digits = 8, part[1:]
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
