package v1alpha1

import (
	"fmt"
	"strings"
)

// DefaultKeyLifetime is the lifetime of keys that ask for none when the
// organization's policy names no default either.
const DefaultKeyLifetime = KeyLifetime90Days

// EffectiveLifetime is the lifetime a key gets: what it asks for, else the
// policy's default, else DefaultKeyLifetime shortened to fit the policy's
// maximum. p may be nil (no policy).
func (p *APIKeyPolicy) EffectiveLifetime(requested *KeyLifetime) KeyLifetime {
	if requested != nil && *requested != "" {
		return *requested
	}
	if p != nil && p.DefaultExpiresAfter != "" {
		return p.DefaultExpiresAfter
	}
	if p != nil && p.MaxLifetimeDays != nil {
		for _, l := range []KeyLifetime{KeyLifetime180Days, KeyLifetime90Days, KeyLifetime30Days} {
			if days, _ := l.Days(); days <= *p.MaxLifetimeDays && days <= 90 {
				return l
			}
		}
	}
	return DefaultKeyLifetime
}

// IssuedLifetime is the lifetime a key issued now gets: EffectiveLifetime,
// shortened to the longest lifetime within the policy's maximum when it is
// beyond it (a key created before the maximum was set, asking for Never or
// 180d). Every key the hub issues, the first and every rotation, expires
// within the policy in force when it is issued. p may be nil (no policy).
func (p *APIKeyPolicy) IssuedLifetime(requested *KeyLifetime) KeyLifetime {
	l := p.EffectiveLifetime(requested)
	if p.CheckLifetime(l) == nil {
		return l
	}
	for _, shorter := range []KeyLifetime{KeyLifetime180Days, KeyLifetime90Days} {
		if p.CheckLifetime(shorter) == nil {
			return shorter
		}
	}
	return KeyLifetime30Days // maxLifetimeDays is at least 30
}

// BeyondPolicy tells whether a key of lifetime l outlives the policy's
// maximum: issued before the maximum was set or lowered. p may be nil.
func (p *APIKeyPolicy) BeyondPolicy(l KeyLifetime) bool {
	return l != "" && p.CheckLifetime(l) != nil
}

// allowedLifetimes names the lifetimes the policy's maximum allows: "30d or
// 90d".
func (p *APIKeyPolicy) allowedLifetimes() string {
	var allowed []string
	for _, l := range []KeyLifetime{KeyLifetime30Days, KeyLifetime90Days, KeyLifetime180Days} {
		if days, _ := l.Days(); days <= *p.MaxLifetimeDays {
			allowed = append(allowed, string(l))
		}
	}
	if len(allowed) == 1 {
		return allowed[0]
	}
	return strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
}

// CheckLifetime returns why the policy forbids a lifetime, or nil. p may be
// nil (no policy).
func (p *APIKeyPolicy) CheckLifetime(l KeyLifetime) error {
	if p == nil || p.MaxLifetimeDays == nil {
		return nil
	}
	days, expires := l.Days()
	if !expires {
		return fmt.Errorf("the organization's policy requires keys to expire within %d days "+
			"(spec.security.apiKeys.maxLifetimeDays of Organization %q); choose %s",
			*p.MaxLifetimeDays, OrganizationName, p.allowedLifetimes())
	}
	if days > *p.MaxLifetimeDays {
		return fmt.Errorf("%s is longer than the %d days the organization's policy allows "+
			"(spec.security.apiKeys.maxLifetimeDays of Organization %q); choose a shorter lifetime",
			l, *p.MaxLifetimeDays, OrganizationName)
	}
	return nil
}
