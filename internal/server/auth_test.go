package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minimax/platform-hub/internal/perclient"
	"github.com/minimax/platform-hub/internal/server"
)

// TestBogusTokensAreBoundedPerClient: a client that sends ever new bogus
// tokens causes a few TokenReviews, then gets 429 without reaching the API
// server; a token it repeats is answered from the cache; another client's
// valid token is still checked and admitted.
func TestBogusTokensAreBoundedPerClient(t *testing.T) {
	g := NewWithT(t)
	var reviews atomic.Int32
	auth := &server.Authorizer{Client: &reviewCounter{Client: k8sClient, n: &reviews}, Clock: clock.RealClock{},
		Reviews: perclient.NewLimiter(0.001, 3, 0, false)}
	ok := auth.Require("create", "usageevents", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	serve := func(from, token string) int {
		r := httptest.NewRequest(http.MethodPost, "/v1/usage/events", nil)
		r.RemoteAddr = from
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		ok.ServeHTTP(w, r)
		return w.Code
	}
	codes := map[int]int{}
	for i := range 10 {
		codes[serve("198.51.100.66:1000", "bogus-"+string(rune('a'+i)))]++
	}
	g.Expect(codes).To(Equal(map[int]int{http.StatusUnauthorized: 3, http.StatusTooManyRequests: 7}))
	g.Expect(reviews.Load()).To(BeEquivalentTo(3), "only the burst reached the API server")
	g.Expect(serve("198.51.100.66:1000", "bogus-a")).To(Equal(http.StatusUnauthorized), "a repeated bad token is answered from the cache")
	g.Expect(reviews.Load()).To(BeEquivalentTo(3))

	valid := serviceAccountToken(g, "auth-bounded", true)
	g.Expect(serve("203.0.113.5:2000", valid)).To(Equal(http.StatusNoContent), "another client is not held back")
}

// reviewCounter counts the TokenReviews sent to the API server.
type reviewCounter struct {
	client.Client
	n *atomic.Int32
}

func (c *reviewCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*authenticationv1.TokenReview); ok {
		c.n.Add(1)
	}
	return c.Client.Create(ctx, obj, opts...)
}

// TestDecisionCacheEvictsLeastRecentlyUsed: a full cache drops the decision
// used longest ago, not all of them: a token in steady use stays cached.
func TestDecisionCacheEvictsLeastRecentlyUsed(t *testing.T) {
	g := NewWithT(t)
	var reviews atomic.Int32
	auth := &server.Authorizer{Client: &reviewCounter{Client: k8sClient, n: &reviews}, Clock: clock.RealClock{}, CacheSize: 3,
		Reviews: perclient.NewLimiter(1000, 1000, 0, false)}
	h := auth.Require("create", "usageevents", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	serve := func(token string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/usage/events", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	for _, token := range []string{"steady", "b", "c", "steady", "d", "e"} { // b and c go, steady stays
		serve(token)
	}
	g.Expect(reviews.Load()).To(BeEquivalentTo(5))
	serve("steady")
	g.Expect(reviews.Load()).To(BeEquivalentTo(5), "the token in use was kept")
	serve("b")
	g.Expect(reviews.Load()).To(BeEquivalentTo(6), "the one used longest ago was dropped")
}
