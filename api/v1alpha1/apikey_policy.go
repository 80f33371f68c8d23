package v1alpha1

import "fmt"

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

// CheckLifetime returns why the policy forbids a lifetime, or nil. p may be
// nil (no policy).
func (p *APIKeyPolicy) CheckLifetime(l KeyLifetime) error {
	if p == nil || p.MaxLifetimeDays == nil {
		return nil
	}
	days, expires := l.Days()
	if !expires {
		return fmt.Errorf("the organization's policy requires keys to expire within %d days "+
			"(spec.security.apiKeys.maxLifetimeDays of Organization %q); choose 30d, 90d or 180d within it",
			*p.MaxLifetimeDays, OrganizationName)
	}
	if days > *p.MaxLifetimeDays {
		return fmt.Errorf("%s is longer than the %d days the organization's policy allows "+
			"(spec.security.apiKeys.maxLifetimeDays of Organization %q); choose a shorter lifetime",
			l, *p.MaxLifetimeDays, OrganizationName)
	}
	return nil
}
