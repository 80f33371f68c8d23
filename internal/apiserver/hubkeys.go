package apiserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
	"github.com/minimax/platform-hub/internal/identity"
	"github.com/minimax/platform-hub/internal/keycheck"
	"github.com/minimax/platform-hub/internal/keys"
	"github.com/minimax/platform-hub/internal/perclient"
)

// hubKeyAuthenticator lets tools outside the cluster call the management
// API directly (its Service, not through kube-apiserver) with a hub key:
// `Authorization: Bearer mhub_…` authenticates as the key's owner, the
// Member whose email the key's spec.owner names, under the username the
// access controller binds roles to. The key must be usable (keycheck.Check,
// and not suspended); which scopes may do what is the scope authorizer's
// to say. Other bearer tokens are left to the delegated authenticator.
type hubKeyAuthenticator struct {
	cache client.Reader
	now   func() time.Time
	// trustForwardedFor reads the caller's address from X-Forwarded-For.
	trustForwardedFor bool
}

// refusedExtra carries why a key that authenticated may do nothing here
// (an address outside the organization's IP allowlist): authorizeKeyScope
// refuses every request of such a user with that reason, as a 403 that
// says it, where a failed authentication would answer a bare 401. It is
// never forwarded (actAs forwards only the extras it names).
const refusedExtra = "hub.minimax.io/refused"

var _ authenticator.Request = (*hubKeyAuthenticator)(nil)

func (a *hubKeyAuthenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	token := bearerToken(req)
	if !strings.HasPrefix(token, keys.Prefix) {
		return nil, false, nil
	}
	// A hub key never goes on to a TokenReview: from here, every failure
	// is final (the union authenticator stops at an error).
	key, err := keys.Parse(token)
	if err != nil {
		return nil, false, errors.New("the bearer token is not a well-formed hub key")
	}
	ctx := req.Context()
	digest := key.Digest()
	list := &hubv1.APIKeyList{}
	if err := a.cache.List(ctx, list, client.MatchingFields{keycheck.DigestIndex: digest}); err != nil {
		return nil, false, fmt.Errorf("looking the hub key up: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, false, fmt.Errorf("unknown hub key (key ID %s)", key.ID())
	}
	k := &list.Items[0]
	if r := keycheck.Check(k, digest, a.now()); r != nil {
		return nil, false, fmt.Errorf("hub key %s: %s", key.ID(), r.Message)
	}
	if k.Status.Phase == hubv1.KeySuspended {
		return nil, false, fmt.Errorf("hub key %s is suspended (its project is archived or at its spending cap)", key.ID())
	}
	// The Organization: the username prefix, the IP allowlist. Without
	// one, neither applies.
	org := &hubv1.Organization{}
	if err := a.cache.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return nil, false, fmt.Errorf("reading the organization: %w", err)
	}
	name, err := a.ownerUsername(ctx, k, org.Spec.Security.UsernamePrefix)
	if err != nil {
		return nil, false, fmt.Errorf("hub key %s: %w", key.ID(), err)
	}
	scope := k.Spec.Scope
	if scope == "" {
		scope = hubv1.ScopeStandard
	}
	extra := map[string][]string{identity.KeyIDExtra: {key.ID()}, identity.KeyScopeExtra: {string(scope)}}
	if !keycheck.AllowedIP(perclient.Address(req, a.trustForwardedFor), org.Spec.Security.IPAllowlist) {
		extra[refusedExtra] = []string{"requests from this IP address are not allowed by the organization's IP allowlist " +
			"(spec.security.ipAllowlist), for hub keys at the management API as at the gateway"}
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: name, Groups: []string{user.AllAuthenticated}, Extra: extra}}, true, nil
}

// websocketBearerPrefix marks a bearer token carried in the WebSocket
// subprotocol header, the way Kubernetes clients send one where browsers
// cannot set Authorization.
const websocketBearerPrefix = "base64url.bearer.authorization.k8s.io."

// bearerToken is the request's bearer token, from the Authorization header
// or the WebSocket subprotocol header: a hub key is found wherever a
// client puts it, so that it never goes on to a TokenReview.
func bearerToken(req *http.Request) string {
	if scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	for _, header := range req.Header.Values("Sec-WebSocket-Protocol") {
		for _, protocol := range strings.Split(header, ",") {
			encoded, ok := strings.CutPrefix(strings.TrimSpace(protocol), websocketBearerPrefix)
			if !ok {
				continue
			}
			if raw, err := base64.RawURLEncoding.DecodeString(encoded); err == nil {
				return string(raw)
			}
		}
	}
	return ""
}

// memberEmailIndex is the cache index of Members by email (hubv1.EmailKey),
// so that a request with a hub key finds its owner without reading every
// Member.
const memberEmailIndex = "hub.minimax.io/email"

// indexMemberEmails registers memberEmailIndex with a cache.
func indexMemberEmails(ctx context.Context, c cache.Cache) error {
	return c.IndexField(ctx, &hubv1.Member{}, memberEmailIndex, func(obj client.Object) []string {
		return []string{hubv1.EmailKey(obj.(*hubv1.Member).Spec.Email)}
	})
}

// ownerUsername is the username of the active Member that owns k.
func (a *hubKeyAuthenticator) ownerUsername(ctx context.Context, k *hubv1.APIKey, prefix string) (string, error) {
	members := &hubv1.MemberList{}
	if err := a.cache.List(ctx, members, client.MatchingFields{memberEmailIndex: hubv1.EmailKey(k.Spec.Owner)}); err != nil {
		return "", err
	}
	switch len(members.Items) {
	case 0:
		return "", errors.New("its owner is no member of the organization")
	case 1:
	default:
		// Admission keeps emails unique; should two ever match, refuse
		// rather than pick one.
		return "", errors.New("two members have its owner's email")
	}
	owner := &members.Items[0]
	switch {
	case owner.Spec.Disabled || !owner.DeletionTimestamp.IsZero():
		return "", errors.New("its owner is disabled or removed")
	}
	return prefix + owner.Spec.Email, nil
}

// authorizeKeyScope refuses every request made with a hub key from an
// address outside the IP allowlist (refusedExtra), and with a key whose
// scope is not Admin (but discovery and OpenAPI), naming the scope needed,
// whatever the owner's role allows;
// for Admin keys, and for everyone else, it has no opinion, and RBAC
// decides (through the delegated authorizer) as for the owner in person.
func authorizeKeyScope(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetUser() == nil {
		return authorizer.DecisionNoOpinion, "", nil
	}
	if refused := a.GetUser().GetExtra()[refusedExtra]; len(refused) > 0 {
		return authorizer.DecisionDeny, refused[0], nil
	}
	scope := a.GetUser().GetExtra()[identity.KeyScopeExtra]
	if len(scope) == 0 || scope[0] == string(hubv1.ScopeAdmin) || discovery(a) {
		return authorizer.DecisionNoOpinion, "", nil
	}
	return authorizer.DecisionDeny, fmt.Sprintf("a %s-scope hub key cannot use the management API; use an Admin-scope key", scope[0]), nil
}

// discovery tells whether a request only reads discovery, OpenAPI or the
// version: left open to keys of every scope, so that clients reach the
// request itself and its refusal names the scope. Every other path (debug,
// metrics) is refused to them.
func discovery(a authorizer.Attributes) bool {
	if a.IsResourceRequest() || (a.GetVerb() != "get" && a.GetVerb() != "head") {
		return false
	}
	path := a.GetPath()
	for _, prefix := range []string{"/api", "/apis", "/openapi/", "/version"} {
		if path == prefix || strings.HasPrefix(path, prefix+"/") || (strings.HasSuffix(prefix, "/") && strings.HasPrefix(path, prefix)) {
			return true
		}
	}
	return false
}

// explainRefusal runs last, once RBAC has allowed nothing: it refuses,
// naming the hub role that the request needs, which Kubernetes appends to
// its 403 ("… cannot create resource "usagereports" …: every hub role
// (Viewer and up) may; …"). Requests no hub role may make get Kubernetes'
// message alone. Only requests made to the management API directly (with
// a hub key) meet it: through the aggregator, kube-apiserver authorizes
// first, with its own message.
func explainRefusal(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if !a.IsResourceRequest() {
		return authorizer.DecisionNoOpinion, "", nil
	}
	resource := a.GetResource()
	if a.GetSubresource() != "" {
		resource += "/" + a.GetSubresource()
	}
	role, ok := access.LeastRole(a.GetAPIGroup(), resource, a.GetVerb())
	if !ok {
		return authorizer.DecisionNoOpinion, "", nil
	}
	return authorizer.DecisionDeny, roleNeeded(role), nil
}

// roleNeeded says which hub role a refused request needs.
func roleNeeded(role hubv1.Role) string {
	switch role {
	case hubv1.RoleViewer:
		return "every hub role (Viewer and up) may; ask an Admin to make you a member of the organization"
	case hubv1.RoleDeveloper:
		return "needs the Developer role in this project (the Project's access list names you), or the Admin or Owner role"
	case hubv1.RoleAdmin:
		return "needs the Admin or Owner role"
	}
	return "needs the Owner role"
}
