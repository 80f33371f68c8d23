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
	"github.com/minimax/platform-hub/internal/keycheck"
	"github.com/minimax/platform-hub/internal/keys"
	"github.com/minimax/platform-hub/internal/perclient"
	"github.com/minimax/platform-hub/internal/pricing"
)

// DigestIndex is the cache index of APIKeys by key digest (keycheck.DigestIndex).
const DigestIndex = keycheck.DigestIndex

// IndexDigests registers DigestIndex with a cache.
func IndexDigests(ctx context.Context, c cache.Cache) error { return keycheck.IndexDigests(ctx, c) }

// Reasons a request is refused; they label the rejection metric.
const (
	reasonMissingKey   = "missing_key"
	reasonMalformedKey = "malformed_key"
	reasonUnknownKey   = "unknown_key"
	reasonRevoked      = keycheck.ReasonRevoked
	reasonExpired      = keycheck.ReasonExpired
	reasonNotIssued    = keycheck.ReasonNotIssued
	reasonScope        = "scope"
	reasonIPNotAllowed = "ip_not_allowed"
	reasonArchived     = "project_archived"
	reasonCapReached   = "cap_reached"
	reasonUnknownURL   = "unknown_url"
	reasonEncoding     = "request_encoding"
	reasonBadRequest   = "bad_request"
	reasonUnpriced     = "model_not_priced"
	reasonNotOwned     = "object_not_found"
	reasonOwnerUnknown = "object_owner_unknown"
	reasonSpoolFull    = "usage_spool_full"
)

// OpenAI error codes the gateway answers with (the "code" of an error body).
const (
	codeInvalidKey = "invalid_api_key"
	codeMissingKey = "missing_api_key"
)

// verdict is the gateway's answer to a request's credentials.
type verdict struct {
	// key is the APIKey the request authenticated as, when it did.
	key   *hubv1.APIKey
	keyID string

	status  int
	reason  string
	message string
	errType string
	code    string
}

func (v verdict) allowed() bool { return v.status == 0 }

// credential returns the API key a request carries: the OpenAI way
// (Authorization: Bearer) or the Anthropic way (x-api-key).
func credential(r *http.Request) string {
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
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
		return refuse(http.StatusUnauthorized, reasonMissingKey, "invalid_request_error", codeMissingKey,
			"You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or in the 'x-api-key' header.")
	}
	key, err := keys.Parse(plaintext)
	if err != nil {
		return refuse(http.StatusUnauthorized, reasonMalformedKey, "invalid_request_error", codeInvalidKey,
			"Incorrect API key provided: it is not a well-formed Platform Hub key (check for a typo or truncation).")
	}
	digest := key.Digest()
	list := &hubv1.APIKeyList{}
	if err := g.Cache.List(ctx, list, client.MatchingFields{DigestIndex: digest}, client.UnsafeDisableDeepCopy); err != nil || len(list.Items) == 0 {
		return refuse(http.StatusUnauthorized, reasonUnknownKey, "invalid_request_error", codeInvalidKey,
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

// checkKey checks the key's own state (keycheck.Check), answered the way
// OpenAI answers an unusable key: 401 invalid_api_key.
func checkKey(k *hubv1.APIKey, digest string, now time.Time) verdict {
	if r := keycheck.Check(k, digest, now); r != nil {
		return refuse(http.StatusUnauthorized, r.Reason, "invalid_request_error", codeInvalidKey, r.Message)
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
		return refuse(http.StatusUnauthorized, reasonUnknownKey, "invalid_request_error", codeInvalidKey, "This API key's project does not exist.")
	}
	org := &hubv1.Organization{}
	hasOrg := g.Cache.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org, client.UnsafeDisableDeepCopy) == nil
	switch {
	case project.Spec.Archived:
		return refuse(http.StatusForbidden, reasonArchived, "permission_error", "project_archived",
			fmt.Sprintf("Project %q is archived; its API keys are suspended.", project.Name))
	case capReached(project, org, hasOrg):
		// The usage server's mark is read directly, not through the phase
		// the manager derives from it: one hop less to the first 429.
		return capRefusal(fmt.Sprintf("Project %q", project.Name), org, hasOrg, now)
	case g.Budgets != nil && g.Budgets.GroupStopped(ctx, g.Cache, k.Spec.Owner):
		// The key's owner is in a group whose cap is exhausted.
		return capRefusal("This API key's owner belongs to a group that", org, hasOrg, now)
	case g.Budgets != nil && g.Budgets.Exhausted(project.Name, orgOrNil(org, hasOrg), now):
		// What this gateway metered since the server's last report reaches
		// the cap: stopped before the server's mark arrives.
		return capRefusal(fmt.Sprintf("Project %q", project.Name), org, hasOrg, now)
	}
	if hasOrg && len(org.Spec.Security.IPAllowlist) > 0 && !keycheck.AllowedIP(g.clientIP(r), org.Spec.Security.IPAllowlist) {
		return refuse(http.StatusForbidden, reasonIPNotAllowed, "permission_error", "ip_not_allowed",
			"Requests from this IP address are not allowed by the organization's IP allowlist.")
	}
	if !scopeAllows(k.Spec.Scope, r) {
		return refuse(http.StatusForbidden, reasonScope, "permission_error", "insufficient_permissions",
			fmt.Sprintf("This API key has the %s scope, which cannot call %s %s; use a Standard key.", k.Spec.Scope, r.Method, r.URL.Path))
	}
	return v
}

// capRefusal answers 429 insufficient_quota, as OpenAI does for an
// exhausted quota, with no Retry-After: SDKs would sleep until the cycle
// ends. The message says when the cap resets: at the next billing cycle,
// the organization's, or the next calendar month (UTC) while there is no
// organization, as the caps count it.
func capRefusal(who string, org *hubv1.Organization, hasOrg bool, now time.Time) verdict {
	c := billing.OrganizationCycle(0, "", now)
	if hasOrg {
		c = billing.OrganizationCycle(org.Spec.Billing.CycleStartDay, org.Spec.Billing.TimeZone, now)
	}
	return refuse(http.StatusTooManyRequests, reasonCapReached, "insufficient_quota", "insufficient_quota",
		fmt.Sprintf("%s has reached its spending cap for this billing cycle; it resets at %s, when the next cycle starts. "+
			"An Owner or Admin can raise the cap to resume sooner.", who, c.End.Format(time.RFC3339)))
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

// clientIP is the caller's address: the connection's peer, or with
// TrustForwardedFor the first address of X-Forwarded-For (set it only behind
// a load balancer that overwrites the header).
func (g *Gateway) clientIP(r *http.Request) netip.Addr {
	return perclient.Address(r, g.TrustForwardedFor)
}

func refuse(status int, reason, errType, code, message string) verdict {
	return verdict{status: status, reason: reason, errType: errType, code: code, message: message}
}

// checkPriced refuses a metered call that a Hard money cap covers when the
// price list cannot price it (the model has no price and its service no
// default): such a call would cost nothing under the cap, and a cap that
// cannot count it cannot hold. Setting a default price for the service is
// how an organization opts out.
func (g *Gateway) checkPriced(ctx context.Context, c *call) verdict {
	if g.Budgets == nil || !c.route.metered() {
		return verdict{}
	}
	capName, unpriced := g.Budgets.Unpriced(ctx, g.Cache, c.key, c.route.Service, c.model, g.organization)
	if !unpriced {
		return verdict{}
	}
	return refuse(http.StatusForbidden, reasonUnpriced, "permission_error", "model_not_priced",
		fmt.Sprintf("Model %q has no %s price in the organization's price list and the service has no default price, "+
			"so the Hard spending cap %s cannot count this call. Ask an Owner or Admin to add the model to "+
			"spec.pricing.%s of the Organization, or to set a default price for the service.",
			c.model, c.route.Service, capName, pricingField(c.route.Service)))
}

// pricingField is where a service's prices are in the Organization's spec.
func pricingField(s pricing.Service) string {
	switch s {
	case pricing.Video:
		return "video"
	case pricing.FineTuning:
		return "fineTuning"
	case pricing.Storage:
		return "storage"
	}
	return "chat"
}
