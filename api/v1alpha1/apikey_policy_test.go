package v1alpha1

import "testing"

func TestIssuedLifetimeIsWithinThePolicy(t *testing.T) {
	max := func(days int32) *APIKeyPolicy { return &APIKeyPolicy{MaxLifetimeDays: &days} }
	l := func(v KeyLifetime) *KeyLifetime { return &v }
	for _, tc := range []struct {
		policy    *APIKeyPolicy
		requested *KeyLifetime
		want      KeyLifetime
	}{
		{nil, l(KeyLifetimeNever), KeyLifetimeNever},
		{max(100), l(KeyLifetimeNever), KeyLifetime90Days},
		{max(100), l(KeyLifetime180Days), KeyLifetime90Days},
		{max(200), l(KeyLifetimeNever), KeyLifetime180Days},
		{max(45), l(KeyLifetime90Days), KeyLifetime30Days},
		{max(100), l(KeyLifetime30Days), KeyLifetime30Days},
		{max(100), nil, KeyLifetime90Days},
	} {
		if got := tc.policy.IssuedLifetime(tc.requested); got != tc.want {
			t.Errorf("IssuedLifetime(%v) under %v = %s, want %s", tc.requested, tc.policy, got, tc.want)
		}
		if tc.policy.BeyondPolicy(tc.policy.IssuedLifetime(tc.requested)) {
			t.Errorf("an issued lifetime is beyond its policy")
		}
	}
}
