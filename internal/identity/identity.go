// Package identity reads what the cluster's authenticator says about how a
// person signed in. The hub does not sign people in itself: kubectl, GitOps
// tools and the dashboard all reach it as users the API server has
// authenticated, usually through the cluster's OIDC identity provider. The
// provider knows whether a sign-in used a second factor and says so in the ID
// token's amr claim (RFC 8176); the API server's structured authentication
// configuration maps that claim into the user's extra information under
// AMRExtra, and from there it reaches every admission request and token
// review. docs/api/member.md shows the configuration.
package identity

import (
	authenticationv1 "k8s.io/api/authentication/v1"
)

// AMRExtra is the key of the user's extra information that holds the
// authentication methods of the sign-in (the ID token's amr claim).
const AMRExtra = "hub.minimax.io/amr"

// ViaExtra is the key of the user's extra information that names the hub
// component acting for the user, by impersonation. Only a component allowed
// to impersonate userextras/hub.minimax.io/via can set it; admission trusts
// it for what only that component may do (ViaManagementAPI).
const ViaExtra = "hub.minimax.io/via"

// The extras of a person who signed in to the management API with a hub
// key: which key, and its scope. Audit logs show the key; the management
// API's scope authorizer reads the scope.
const (
	KeyIDExtra    = "hub.minimax.io/key-id"
	KeyScopeExtra = "hub.minimax.io/key-scope"
)

// ViaManagementAPI is ViaExtra's value on the management API's writes: an
// APIKey it creates or rotates may carry a key it minted
// (hub.minimax.io/issued-key).
const ViaManagementAPI = "management-api"

// factor is a kind of proof: something the person knows, has, or is.
type factor int

const (
	knowledge factor = iota + 1
	possession
	inherence
)

// factors sorts the RFC 8176 methods by the kind of proof they are. Methods
// not listed (such as "user" presence or risk-based "rba") prove none.
var factors = map[string]factor{
	"pwd": knowledge, "pin": knowledge, "kba": knowledge,
	"otp": possession, "hwk": possession, "swk": possession, "sc": possession,
	"sms": possession, "tel": possession, "pop": possession,
	"fpt": inherence, "face": inherence, "iris": inherence, "retina": inherence, "vbm": inherence,
}

// MultiFactor says whether the user signed in with more than one kind of
// proof, as the identity provider reported it through the AMRExtra extra:
// the provider said "mfa", or the methods span two kinds (a password and a
// one-time code, a security key and its PIN). One kind alone, such as a
// password, or a code mailed or texted in place of a password, is one
// factor however many methods carry it.
func MultiFactor(extra map[string]authenticationv1.ExtraValue) bool {
	kinds := map[factor]bool{}
	for _, method := range extra[AMRExtra] {
		if method == "mfa" {
			return true
		}
		if f := factors[method]; f != 0 {
			kinds[f] = true
		}
	}
	return len(kinds) >= 2
}
