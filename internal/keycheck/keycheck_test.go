package keycheck

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestRetiredPreviousKeyStopsAtOnce: the previous key of a rotation stops
// as soon as spec.rotation.retirePreviousKeyID names it, from the spec
// alone: its status still shows the overlap, as it does while the manager
// is down.
func TestRetiredPreviousKeyStopsAtOnce(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	key := &hubv1.APIKey{Status: hubv1.APIKeyStatus{Phase: hubv1.KeyActive, Digest: "sha256:new",
		PreviousKey: &hubv1.PreviousKey{KeyID: "OldKey0001", Digest: "sha256:old", ValidUntil: metav1.NewTime(now.Add(24 * time.Hour))}}}
	if v := Check(key, "sha256:old", now); v != nil {
		t.Fatalf("the previous key within its overlap: %+v", v)
	}
	key.Spec.Rotation = &hubv1.RotationSpec{RetirePreviousKeyID: "OldKey0001"}
	if v := Check(key, "sha256:old", now); v == nil {
		t.Fatalf("the retired previous key: %+v", v)
	}
	if v := Check(key, "sha256:new", now); v != nil {
		t.Fatalf("the current key: %+v", v)
	}
	key.Spec.Rotation.RetirePreviousKeyID = "SomeOther1"
	if v := Check(key, "sha256:old", now); v != nil {
		t.Fatalf("retiring another key ID leaves this one: %+v", v)
	}
}

// TestRotatedOutKeySaysWhen: a key that rotations replaced, whose overlap
// ended or that a later rotation retired, is told it was rotated out and
// when, not that it is an incorrect key.
func TestRotatedOutKeySaysWhen(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ended := now.Add(-time.Hour)
	key := &hubv1.APIKey{Status: hubv1.APIKeyStatus{Phase: hubv1.KeyActive, Digest: "sha256:third",
		PreviousKey: &hubv1.PreviousKey{KeyID: "Second0001", Digest: "sha256:second", ValidUntil: metav1.NewTime(ended)},
		RetiredKeys: []hubv1.RetiredKey{{KeyID: "First00001", Digest: "sha256:first", RetiredAt: metav1.NewTime(now.Add(-48 * time.Hour))}}}}
	for digest, when := range map[string]string{"sha256:first": "2026-11-28T12:00:00Z", "sha256:second": "2026-11-30T11:00:00Z"} {
		v := Check(key, digest, now)
		if v == nil || !strings.Contains(v.Message, "rotated out") || !strings.Contains(v.Message, when) {
			t.Errorf("%s: %+v", digest, v)
		}
	}
	if v := Check(key, "sha256:third", now); v != nil {
		t.Errorf("the current key: %+v", v)
	}
}

// TestAllowedIP: an empty allowlist allows every address; otherwise an
// address is allowed when a listed network holds it (IPv4 in IPv6 form
// too), and an address that does not parse never is.
func TestAllowedIP(t *testing.T) {
	list := []hubv1.CIDR{"10.0.0.0/8", "2001:db8::/32"}
	for _, c := range []struct {
		ip   string
		list []hubv1.CIDR
		want bool
	}{
		{"192.0.2.1", nil, true},
		{"10.1.2.3", list, true},
		{"::ffff:10.1.2.3", list, true},
		{"2001:db8::1", list, true},
		{"192.0.2.1", list, false},
		{"", list, false},
	} {
		ip, _ := netip.ParseAddr(c.ip)
		if got := AllowedIP(ip, c.list); got != c.want {
			t.Errorf("AllowedIP(%q, %v) = %v, want %v", c.ip, c.list, got, c.want)
		}
	}
}

// TestOnlyKnownWorkingPhasesAllow: a key works in Active, Rotating and
// Suspended (which the project's checks refuse in their own words); in
// Pending, Expired, or a phase this version does not know, it is refused.
func TestOnlyKnownWorkingPhasesAllow(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for phase, works := range map[hubv1.APIKeyPhase]bool{hubv1.KeyActive: true, hubv1.KeyRotating: true, hubv1.KeySuspended: true,
		hubv1.KeyPending: false, "": false, hubv1.KeyExpired: false, "Quarantined": false} {
		key := &hubv1.APIKey{Status: hubv1.APIKeyStatus{Phase: phase, Digest: "sha256:k"}}
		if got := Check(key, "sha256:k", now) == nil; got != works {
			t.Errorf("phase %q: works %v, want %v", phase, got, works)
		}
	}
}
