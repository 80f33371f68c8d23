package perclient

import (
	"net/http"
	"net/netip"
	"testing"
)

func request(remote, xff string) *http.Request {
	r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
	if xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	return r
}

// TestEachClientHasItsOwnBucket: a client that spends its bucket is
// refused, while another client (another address, or another IPv6 /64)
// is not; addresses in one /64 share a bucket.
func TestEachClientHasItsOwnBucket(t *testing.T) {
	l := NewLimiter(0.001, 3, 0, false)
	noisy := request("198.51.100.7:40000", "")
	for i := range 3 {
		if !l.Allow(noisy) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.Allow(noisy) {
		t.Fatal("the noisy client's fourth request passed")
	}
	if !l.Allow(request("203.0.113.9:1234", "")) {
		t.Fatal("another client was refused for the noisy one")
	}
	v6 := NewLimiter(0.001, 1, 0, false)
	if !v6.Allow(request("[2001:db8:1:2::1]:443", "")) || v6.Allow(request("[2001:db8:1:2::ffff]:443", "")) {
		t.Fatal("addresses of one /64 should share a bucket")
	}
	if !v6.Allow(request("[2001:db8:1:3::1]:443", "")) {
		t.Fatal("another /64 is another client")
	}
}

func TestAddress(t *testing.T) {
	for _, tc := range []struct {
		remote, xff string
		trust       bool
		want        string
	}{
		{"10.0.0.1:5", "", false, "10.0.0.1"},
		{"10.0.0.1:5", "198.51.100.1, 10.0.0.1", false, "10.0.0.1"},
		{"10.0.0.1:5", "198.51.100.1", true, "198.51.100.1"},
		{"10.0.0.1:5", "6.6.6.6, 198.51.100.1", true, "198.51.100.1"}, // the client wrote the first entry
		{"10.0.0.1:5", "garbage", true, "10.0.0.1"},
		{"[::ffff:10.0.0.2]:5", "", false, "10.0.0.2"},
	} {
		if got := Address(request(tc.remote, tc.xff), tc.trust); got != netip.MustParseAddr(tc.want) {
			t.Errorf("Address(%q, %q, %v) = %s, want %s", tc.remote, tc.xff, tc.trust, got, tc.want)
		}
	}
}
