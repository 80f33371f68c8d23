// Package identity reads what the cluster's authenticator says about how a
// person signed in. The hub does not sign people in itself: kubectl, GitOps
// tools and the dashboard all reach it as users the API server has
// authenticated, usually through the cluster's OIDC identity provider. The
// provider knows whether a sign-in used a second factor and says so in the ID
// token's amr claim (RFC 8176); the API server's structured authentication
// configuration maps that claim into the user's extra information under
// AMRExtra, and from there it reaches every admission request and token
// review. docs/team.md shows the configuration.
package identity

import (
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// AMRExtra is the key of the user's extra information that holds the
// authentication methods of the sign-in (the ID token's amr claim).
const AMRExtra = "hub.minimax.io/amr"

// secondFactors are the RFC 8176 methods that prove possession or inherence,
// so a sign-in that used one used more than a password. "mfa" is the
// provider saying so outright.
var secondFactors = []string{
	"mfa",                     // multiple factors, as the provider says
	"otp", "hwk", "swk", "sc", // one-time code, hardware, software or smart-card key
	"sms", "tel", // a code sent to, or a call to, a phone
	"fpt", "face", "iris", "retina", "vbm", // biometrics
}

// MultiFactor says whether the user signed in with a second factor, as the
// identity provider reported it through the AMRExtra extra.
func MultiFactor(extra map[string]authenticationv1.ExtraValue) bool {
	for _, method := range extra[AMRExtra] {
		if slices.Contains(secondFactors, method) {
			return true
		}
	}
	return false
}
