package server

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/perclient"
)

// Authorizer admits a request when its bearer token is a Kubernetes token
// (TokenReview) whose user may perform the verb on a virtual resource of the
// hub.minimax.io group (SubjectAccessReview). The gateway's ServiceAccount,
// for example, is granted "create" on "usageevents".
//
// Decisions, refusals included, are cached by token digest in a
// least-recently-used cache of 10,000, so a client that repeats a bad token
// costs the API server nothing more; and each client address may fail only
// so many reviews a second (Reviews), so one sending ever new bogus tokens
// is answered 429 without reaching the API server. Tokens that pass cost
// nothing against the limit: gateways behind one address are not held back.
type Authorizer struct {
	Client client.Client
	Clock  clock.PassiveClock
	// TTL is how long a decision is cached, by token digest: a revoked
	// token or binding takes effect within it. Default 10s.
	TTL time.Duration
	// Reviews bounds the failed reviews of each client address (each IPv6
	// address apart); nil means 5 a second in bursts of 20.
	Reviews *perclient.Limiter
	// CacheSize is how many decisions are kept; default 10,000.
	CacheSize int

	once  sync.Once
	cache *lru.Cache // [32]byte → decision; safe for concurrent use
}

type decision struct {
	user    string
	allowed bool
	reason  string
	expires time.Time
}

// Require wraps a handler so that only callers allowed verb on resource reach
// it. Refusals are JSON: 401 without a valid token, 403 without permission.
func (a *Authorizer) Require(verb, resource string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			writeError(w, http.StatusUnauthorized, errorBody{Message: "a Kubernetes bearer token is required (Authorization: Bearer <token>)"})
			return
		}
		d, err := a.decide(r, token, verb, resource)
		switch {
		case errors.Is(err, errTooManyReviews):
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, errorBody{Message: "too many requests with tokens to check from this " +
				"address; retry in a moment"})
		case err != nil:
			// The cause may name the API server; callers are not yet known.
			ctrl.LoggerFrom(r.Context()).Error(err, "Checking a bearer token")
			writeError(w, http.StatusServiceUnavailable, errorBody{Message: "cannot check the token with the Kubernetes API right now; retry later"})
		case d.user == "":
			writeError(w, http.StatusUnauthorized, errorBody{Message: "the bearer token is not valid: " + d.reason})
		case !d.allowed:
			writeError(w, http.StatusForbidden, errorBody{Message: fmt.Sprintf(
				"%s may not %s %s.%s: grant it with RBAC (%s)", d.user, verb, resource, hubv1.GroupVersion.Group, d.reason)})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// errTooManyReviews: the client caused more reviews than Reviews allows.
var errTooManyReviews = errors.New("too many token reviews from this client")

func (a *Authorizer) decide(r *http.Request, token, verb, resource string) (decision, error) {
	a.once.Do(func() {
		a.cache = lru.New(cmp.Or(a.CacheSize, 10_000))
		if a.Reviews == nil {
			a.Reviews = perclient.NewLimiter(5, 20, 0, false).ExactAddresses()
		}
	})
	ctx := r.Context()
	now := a.Clock.Now()
	key := sha256.Sum256([]byte(verb + "\x00" + resource + "\x00" + token))
	if v, ok := a.cache.Get(key); ok && now.Before(v.(decision).expires) {
		return v.(decision), nil
	}
	if a.Reviews.Spent(r) {
		return decision{}, errTooManyReviews
	}

	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	if err := a.Client.Create(ctx, review); err != nil {
		return decision{}, err
	}
	d := decision{reason: review.Status.Error}
	if !review.Status.Authenticated {
		a.Reviews.Take(r)
	}
	if review.Status.Authenticated {
		u := review.Status.User
		d.user = u.Username
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, Groups: u.Groups, UID: u.UID, Extra: convertExtra(u.Extra),
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: hubv1.GroupVersion.Group, Version: hubv1.GroupVersion.Version, Resource: resource, Verb: verb,
			},
		}}
		if err := a.Client.Create(ctx, sar); err != nil {
			return decision{}, err
		}
		d.allowed, d.reason = sar.Status.Allowed, sar.Status.Reason
	}
	ttl := a.TTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	d.expires = now.Add(ttl)
	a.cache.Add(key, d)
	return d, nil
}

func convertExtra(in map[string]authenticationv1.ExtraValue) map[string]authorizationv1.ExtraValue {
	if in == nil {
		return nil
	}
	out := make(map[string]authorizationv1.ExtraValue, len(in))
	for k, v := range in {
		out[k] = authorizationv1.ExtraValue(v)
	}
	return out
}
