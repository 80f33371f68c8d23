package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/keys"
)

// DigestIndex is the cache index of APIKeys by the digests of the keys that
// may work: the current key and, during an overlap, the previous one.
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
		return digests
	})
}

// Reasons a request is refused; they label the rejection metric.
const (
	reasonMissingKey   = "missing_key"
	reasonMalformedKey = "malformed_key"
	reasonUnknownKey   = "unknown_key"
	reasonRevoked      = "revoked"
	reasonExpired      = "expired"
	reasonNotIssued    = "not_issued"
	reasonScope        = "scope"
	reasonIPNotAllowed = "ip_not_allowed"
	reasonArchived     = "project_archived"
	reasonCapReached   = "cap_reached"
)

// verdict is the gateway's answer to a request's credentials.
type verdict struct {
	// key is the APIKey the request authenticated as, when it did.
	key   *hubv1.APIKey
	keyID string

	status     int
	reason     string
	message    string
	errType    string
	retryAfter time.Duration
}

func (v verdict) allowed() bool { return v.status == 0 }

// credential returns the API key a request carries: the OpenAI way
// (Authorization: Bearer) or the Anthropic way (x-api-key).
func credential(r *http.Request) string {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(token)
	}
	return strings.TrimSpace(r.Header.Get("x-api-key"))
}

// authorize decides whether a request may pass, reading keys, projects and
// the organization from the cache. Every check that can be made without a
// lookup (format, checksum) comes first.
func (g *Gateway) authorize(ctx context.Context, r *http.Request, now time.Time) verdict {
	plaintext := credential(r)
	if plaintext == "" {
		return refuse(http.StatusUnauthorized, reasonMissingKey, "invalid_request_error",
			"You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or in the 'x-api-key' header.")
	}
	key, err := keys.Parse(plaintext)
	if err != nil {
		return refuse(http.StatusUnauthorized, reasonMalformedKey, "invalid_request_error",
			"Incorrect API key provided: it is not a well-formed Platform Hub key (check for a typo or truncation).")
	}
	digest := key.Digest()
	list := &hubv1.APIKeyList{}
	if err := g.Cache.List(ctx, list, client.MatchingFields{DigestIndex: digest}, client.UnsafeDisableDeepCopy); err != nil || len(list.Items) == 0 {
		return refuse(http.StatusUnauthorized, reasonUnknownKey, "invalid_request_error",
			fmt.Sprintf("Incorrect API key provided (key ID %s).", key.ID()))
	}
	apiKey := &list.Items[0]
	v := checkKey(apiKey, digest, now)
	v.keyID = key.ID()
	if !v.allowed() {
		return v
	}
	v.key = apiKey
	return g.checkContext(ctx, v, r, now)
}

// checkKey checks the key's own state: revoked, expired, the previous key's
// overlap ended. The gateway checks times itself, so a key stops at its
// expiry exactly even if the controller is late.
func checkKey(k *hubv1.APIKey, digest string, now time.Time) verdict {
	s := &k.Status
	switch {
	case k.Spec.Revoked || s.Phase == hubv1.KeyRevoked:
		return refuse(http.StatusUnauthorized, reasonRevoked, "invalid_request_error",
			"This API key has been revoked.")
	case s.Digest == digest && s.ExpiresAt != nil && !now.Before(s.ExpiresAt.Time):
		return refuse(http.StatusUnauthorized, reasonExpired, "invalid_request_error",
			fmt.Sprintf("This API key expired at %s.", s.ExpiresAt.UTC().Format(time.RFC3339)))
	case s.Digest != digest && (s.PreviousKey == nil || !now.Before(s.PreviousKey.ValidUntil.Time)):
		return refuse(http.StatusUnauthorized, reasonExpired, "invalid_request_error",
			"This API key was replaced by a rotation and its overlap window has ended; use the new key.")
	case s.Phase == hubv1.KeyExpired:
		return refuse(http.StatusUnauthorized, reasonExpired, "invalid_request_error", "This API key has expired.")
	case s.Phase == hubv1.KeyPending || s.Phase == "":
		return refuse(http.StatusUnauthorized, reasonNotIssued, "invalid_request_error", "This API key is not active.")
	}
	return verdict{}
}

// checkContext checks what the key's project and the organization allow:
// archived project, hard cap reached, IP allowlist, scope.
func (g *Gateway) checkContext(ctx context.Context, v verdict, r *http.Request, now time.Time) verdict {
	k := v.key
	project := &hubv1.Project{}
	// The cache's objects are read, never changed, so they are not copied.
	if err := g.Cache.Get(ctx, client.ObjectKey{Name: k.Namespace}, project, client.UnsafeDisableDeepCopy); err != nil {
		return refuse(http.StatusUnauthorized, reasonUnknownKey, "invalid_request_error", "This API key's project does not exist.")
	}
	org := &hubv1.Organization{}
	hasOrg := g.Cache.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org, client.UnsafeDisableDeepCopy) == nil
	switch {
	case project.Spec.Archived:
		return refuse(http.StatusForbidden, reasonArchived, "permission_error",
			fmt.Sprintf("Project %q is archived; its API keys are suspended.", project.Name))
	case capReached(project, org, hasOrg):
		// The usage server's mark is read directly, not through the phase
		// the manager derives from it: one hop less to the first 429.
		return capRefusal(project.Name, org, hasOrg, now)
	case g.Budgets != nil && g.Budgets.GroupStopped(ctx, g.Cache, k.Spec.Owner):
		// The key's owner is in a group whose cap is exhausted.
		out := capRefusal(project.Name, org, hasOrg, now)
		out.message = "This API key's owner belongs to a group that has reached its spending cap for this billing cycle."
		return out
	case g.Budgets != nil && g.Budgets.Exhausted(project.Name, orgOrNil(org, hasOrg), now):
		// What this gateway metered since the server's last report reaches
		// the cap: stopped before the server's mark arrives.
		return capRefusal(project.Name, org, hasOrg, now)
	}
	if hasOrg && len(org.Spec.Security.IPAllowlist) > 0 && !allowedIP(g.clientIP(r), org.Spec.Security.IPAllowlist) {
		return refuse(http.StatusForbidden, reasonIPNotAllowed, "permission_error",
			"Requests from this IP address are not allowed by the organization's IP allowlist.")
	}
	if !scopeAllows(k.Spec.Scope, r) {
		return refuse(http.StatusForbidden, reasonScope, "permission_error",
			fmt.Sprintf("This API key has the %s scope, which cannot call %s %s; use a Standard key.", k.Spec.Scope, r.Method, r.URL.Path))
	}
	return v
}

// capRefusal answers 429 until the next billing cycle: the organization's,
// or the next calendar month (UTC) while there is no organization, as the
// caps count it.
func capRefusal(project string, org *hubv1.Organization, hasOrg bool, now time.Time) verdict {
	out := refuse(http.StatusTooManyRequests, reasonCapReached, "insufficient_quota",
		fmt.Sprintf("Project %q has reached its spending cap for this billing cycle.", project))
	c := billing.OrganizationCycle(0, "", now)
	if hasOrg {
		c = billing.OrganizationCycle(org.Spec.Billing.CycleStartDay, org.Spec.Billing.TimeZone, now)
	}
	out.retryAfter = c.End.Sub(now)
	return out
}

func orgOrNil(org *hubv1.Organization, hasOrg bool) *hubv1.Organization {
	if hasOrg {
		return org
	}
	return nil
}

// capReached tells whether a Hard cap of the project or of the organization
// is exhausted.
func capReached(project *hubv1.Project, org *hubv1.Organization, hasOrg bool) bool {
	return project.Status.Phase == hubv1.ProjectCapReached ||
		meta.IsStatusConditionTrue(project.Status.Conditions, hubv1.CapReachedCondition) ||
		(hasOrg && meta.IsStatusConditionTrue(org.Status.Conditions, hubv1.CapReachedCondition))
}

// scopeAllows: Read keys may only read (GET, HEAD); Standard and Admin keys
// may call every API the gateway fronts.
func scopeAllows(scope hubv1.APIKeyScope, r *http.Request) bool {
	if scope == hubv1.ScopeRead {
		return r.Method == http.MethodGet || r.Method == http.MethodHead
	}
	return true
}

func allowedIP(ip netip.Addr, allowlist []hubv1.CIDR) bool {
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

// clientIP is the caller's address: the connection's peer, or with
// TrustForwardedFor the first address of X-Forwarded-For (set it only behind
// a load balancer that overwrites the header).
func (g *Gateway) clientIP(r *http.Request) netip.Addr {
	if g.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return ip
			}
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

func refuse(status int, reason, errType, message string) verdict {
	return verdict{status: status, reason: reason, errType: errType, message: message}
}
