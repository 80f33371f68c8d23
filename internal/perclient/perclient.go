// Package perclient tells who a client is by its network address, and
// limits the rate of each client's requests, so that one client (an
// anonymous one sending bogus tokens, say) cannot use up what others need.
//
// A client is its IPv4 address, or the /64 prefix of its IPv6 address (the
// block one host is given, RFC 6177), or its whole IPv6 address for limits
// inside a cluster, where a node's pods share a /64 (ExactAddresses). Limits are token buckets
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

// Address is the client's address: with trustForwardedFor (set it only
// behind one proxy, which appends the address it saw), the last
// X-Forwarded-For entry, which that proxy wrote (the entries before it are
// the client's to choose); else the connection's peer. It is the zero Addr
// when neither parses.
func Address(r *http.Request, trustForwardedFor bool) netip.Addr {
	if trustForwardedFor {
		if values := r.Header.Values("X-Forwarded-For"); len(values) > 0 {
			last := values[len(values)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
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

// key is the unit a limit applies to: an IPv4 address, an IPv6 prefix of
// v6Bits.
func key(addr netip.Addr, v6Bits int) netip.Prefix {
	if addr.Is6() {
		p, _ := addr.WithZone("").Prefix(v6Bits)
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
	v6Bits            int

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
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, trustForwardedFor: trustForwardedFor, v6Bits: 64,
		clients: lru.New(clients)}
}

// ExactAddresses makes each IPv6 address a client of its own, rather than
// each /64: inside a cluster, where one node's pods share a /64.
func (l *Limiter) ExactAddresses() *Limiter {
	l.v6Bits = 128
	return l
}

// Allow tells whether r's client may make a request now, and takes one
// from its bucket if so.
func (l *Limiter) Allow(r *http.Request) bool {
	return l.AllowAddr(Address(r, l.trustForwardedFor))
}

// AllowAddr is Allow for a client known by its address.
func (l *Limiter) AllowAddr(addr netip.Addr) bool { return l.bucket(addr).Allow() }

// Spent tells whether r's client has no request left now, without taking
// one: for limits that count only some outcomes (failures), taken with
// Take once the outcome is known.
func (l *Limiter) Spent(r *http.Request) bool {
	return l.bucket(Address(r, l.trustForwardedFor)).Tokens() < 1
}

// Take takes one request from r's client's bucket, if one is left.
func (l *Limiter) Take(r *http.Request) { l.bucket(Address(r, l.trustForwardedFor)).Allow() }

func (l *Limiter) bucket(addr netip.Addr) *rate.Limiter {
	k := key(addr, l.v6Bits)
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.clients.Get(k)
	if !ok {
		v = rate.NewLimiter(l.rate, l.burst)
		l.clients.Add(k, v)
	}
	return v.(*rate.Limiter)
}
