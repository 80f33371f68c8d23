package identity

import (
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestMultiFactor(t *testing.T) {
	amr := func(methods ...string) map[string]authenticationv1.ExtraValue {
		return map[string]authenticationv1.ExtraValue{AMRExtra: methods}
	}
	for _, tc := range []struct {
		name  string
		extra map[string]authenticationv1.ExtraValue
		want  bool
	}{
		{"no extra (a client certificate, a service account)", nil, false},
		{"password only", amr("pwd"), false},
		{"password and knowledge questions: one kind", amr("pwd", "kba"), false},
		{"a one-time code in place of a password", amr("otp"), false},
		{"a security key without its PIN", amr("hwk"), false},
		{"the provider says mfa", amr("mfa"), true},
		{"password and one-time code", amr("pwd", "otp"), true},
		{"security key and PIN", amr("hwk", "pin"), true},
		{"security key and fingerprint", amr("hwk", "fpt"), true},
		{"unknown methods prove nothing", amr("pwd", "ngcmfa-unknown", "rba"), false},
		{"amr under another key does not count", map[string]authenticationv1.ExtraValue{"example.com/amr": {"mfa"}}, false},
	} {
		if got := MultiFactor(tc.extra); got != tc.want {
			t.Errorf("%s: MultiFactor(%v) = %v, want %v", tc.name, tc.extra, got, tc.want)
		}
	}
}
