// Package keycheck decides whether a presented hub key may be used, from the
// APIKeys the hub knows: it finds the APIKey by the key's digest and reads
// its state (revoked, expired, an overlap ended, rotated out). The gateway
// and the management API (which takes Admin-scope keys as credentials) both
// ask it, so a key works, or stops, in the same way everywhere.
package keycheck

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// DigestIndex is the cache index of APIKeys by the digests of their keys:
// the current key, during an overlap the previous one, and the last retired
// ones (which never work, but get an answer that says when they stopped).
const DigestIndex = "hub.minimax.io/digest"

// IndexDigests registers DigestIndex with a cache.
func IndexDigests(ctx context.Context, c cache.Cache) error {
	return c.IndexField(ctx, &hubv1.APIKey{}, DigestIndex, func(obj client.Object) []string {
		key := obj.(*hubv1.APIKey)
		var digests []string
		if key.Status.Digest != "" {
			digests = append(digests, key.Status.Digest)
		}
		if p := key.Status.PreviousKey; p != nil && p.Digest != "" {
			digests = append(digests, p.Digest)
		}
		for _, r := range key.Status.RetiredKeys {
			digests = append(digests, r.Digest)
		}
		return digests
	})
}

// Reasons a key is refused (they label the gateway's rejection metric).
const (
	ReasonRevoked   = "revoked"
	ReasonExpired   = "expired"
	ReasonNotIssued = "not_issued"
)

// Refusal is why a key cannot be used: always 401 to the caller, with a
// message that says what happened to the key, never who owns it.
type Refusal struct {
	Reason  string
	Message string
}

// Check reads the state of the key with the given digest, which the APIKey
// k lists: revoked, expired, its overlap ended or cut short, rotated out,
// not yet issued, in a phase it does not know. It reads times and the spec
// itself, so a key stops at its
// expiry, and a retired previous key at once, even while the manager is
// late or down. nil means the key may be used, as far as its own state
// goes (the project and the organization may still refuse it).
func Check(k *hubv1.APIKey, digest string, now time.Time) *Refusal {
	s := &k.Status
	if k.Spec.Revoked || s.Phase == hubv1.KeyRevoked {
		return &Refusal{ReasonRevoked, "This API key has been revoked."}
	}
	prev := s.PreviousKey
	switch {
	case s.Digest == digest:
		if s.ExpiresAt != nil && !now.Before(s.ExpiresAt.Time) {
			return &Refusal{ReasonExpired, fmt.Sprintf("This API key expired at %s.", s.ExpiresAt.UTC().Format(time.RFC3339))}
		}
	case prev != nil && prev.Digest == digest:
		if !now.Before(prev.ValidUntil.Time) {
			return rotatedOut(prev.ValidUntil.Time)
		}
		if k.Spec.Rotation != nil && k.Spec.Rotation.RetirePreviousKeyID == prev.KeyID {
			return &Refusal{ReasonRevoked, "This API key was replaced by a rotation and has been retired; use the key that replaced it."}
		}
	default:
		for _, r := range s.RetiredKeys {
			if r.Digest == digest {
				return rotatedOut(r.RetiredAt.Time)
			}
		}
		return rotatedOut(time.Time{}) // listed a moment ago; the cache is behind the status
	}
	// The phases a key works in; Suspended is the project's or the cap's to
	// refuse, with their own words. Any other phase, one a newer manager
	// may write that this version does not know included, refuses: a key
	// is used only in a state known to allow it.
	switch s.Phase {
	case hubv1.KeyActive, hubv1.KeyRotating, hubv1.KeySuspended:
		return nil
	case hubv1.KeyExpired:
		return &Refusal{ReasonExpired, "This API key has expired."}
	}
	return &Refusal{ReasonNotIssued, "This API key is not active."}
}

// rotatedOut refuses a key that a rotation replaced and that no longer
// works, saying when it stopped (when known).
func rotatedOut(at time.Time) *Refusal {
	when := ""
	if !at.IsZero() {
		when = " at " + at.UTC().Format(time.RFC3339)
	}
	return &Refusal{ReasonExpired,
		fmt.Sprintf("This API key was rotated out: a rotation replaced it, and it stopped working%s; use the key that replaced it.", when)}
}

// AllowedIP says whether a key may be used from ip under the
// organization's IP allowlist (spec.security.ipAllowlist): an empty list
// allows every address; an address that does not parse is allowed by none.
func AllowedIP(ip netip.Addr, allowlist []hubv1.CIDR) bool {
	if len(allowlist) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, c := range allowlist {
		if prefix, err := netip.ParsePrefix(string(c)); err == nil && prefix.Contains(ip) {
			return true
		}
	}
	return false
}
