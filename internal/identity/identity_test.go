package identity

import (
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestMultiFactor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]authenticationv1.ExtraValue
		want  bool
	}{
		{"no extra (a client certificate, a service account)", nil, false},
		{"password only", map[string]authenticationv1.ExtraValue{AMRExtra: {"pwd"}}, false},
		{"password and knowledge questions", map[string]authenticationv1.ExtraValue{AMRExtra: {"pwd", "kba"}}, false},
		{"the provider says mfa", map[string]authenticationv1.ExtraValue{AMRExtra: {"pwd", "mfa"}}, true},
		{"a one-time code", map[string]authenticationv1.ExtraValue{AMRExtra: {"pwd", "otp"}}, true},
		{"a hardware key alone", map[string]authenticationv1.ExtraValue{AMRExtra: {"hwk"}}, true},
		{"amr under another key does not count", map[string]authenticationv1.ExtraValue{"example.com/amr": {"mfa"}}, false},
	} {
		if got := MultiFactor(tc.extra); got != tc.want {
			t.Errorf("%s: MultiFactor(%v) = %v, want %v", tc.name, tc.extra, got, tc.want)
		}
	}
}
