// Package perclient tells who a client is by its network address, and
// limits the rate of each client's requests, so that one client (an
// anonymous one sending bogus tokens, say) cannot use up what others need.
//
// A client is its IPv4 address, or the /64 prefix of its IPv6 address (the
// block one host is given, RFC 6177). Limits are token buckets
// (golang.org/x/time/rate), one per client, kept for the most recently seen
// clients only (k8s.io/utils/lru), so memory stays bounded whatever the
// number of addresses.
package perclient

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/time/rate"
	"k8s.io/utils/lru"
)

// Address is the client's address: the first X-Forwarded-For entry when
// trustForwardedFor (set it only behind a proxy that overwrites the header),
// else the connection's peer. It is the zero Addr when neither parses.
func Address(r *http.Request, trustForwardedFor bool) netip.Addr {
	if trustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return ip.Unmap()
			}
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// key is the unit a limit applies to: an IPv4 address, an IPv6 /64.
func key(addr netip.Addr) netip.Prefix {
	if addr.Is6() {
		p, _ := addr.WithZone("").Prefix(64)
		return p
	}
	return netip.PrefixFrom(addr, addr.BitLen())
}

// Limiter allows each client Rate requests a second, in bursts of Burst.
// The zero value is not usable: use NewLimiter.
type Limiter struct {
	rate              rate.Limit
	burst             int
	trustForwardedFor bool

	mu      sync.Mutex
	clients *lru.Cache
}

// NewLimiter allows each client perSecond requests a second in bursts of
// burst, remembering the last clients clients (10,000 when 0).
// trustForwardedFor is as for Address.
func NewLimiter(perSecond float64, burst, clients int, trustForwardedFor bool) *Limiter {
	if clients <= 0 {
		clients = 10_000
	}
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, trustForwardedFor: trustForwardedFor, clients: lru.New(clients)}
}

// Allow tells whether r's client may make a request now, and takes one
// from its bucket if so.
func (l *Limiter) Allow(r *http.Request) bool {
	return l.AllowAddr(Address(r, l.trustForwardedFor))
}

// AllowAddr is Allow for a client known by its address.
func (l *Limiter) AllowAddr(addr netip.Addr) bool {
	k := key(addr)
	l.mu.Lock()
	v, ok := l.clients.Get(k)
	if !ok {
		v = rate.NewLimiter(l.rate, l.burst)
		l.clients.Add(k, v)
	}
	l.mu.Unlock()
	return v.(*rate.Limiter).Allow()
}
