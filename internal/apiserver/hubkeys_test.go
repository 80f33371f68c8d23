package apiserver

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/minimax/platform-hub/internal/identity"
)

// TestHubKeyFoundWhereverClientsPutIt: a hub key in the WebSocket
// subprotocol header is found as surely as in Authorization, so that it
// never goes on to a TokenReview.
func TestHubKeyFoundWhereverClientsPutIt(t *testing.T) {
	key := "mhub_AbCdEf0123_0123456789abcdefghijABCDEFGHIJ0123456789"
	req, _ := http.NewRequest(http.MethodGet, "https://hub/apis", nil)
	req.Header.Set("Sec-WebSocket-Protocol", "v5.channel.k8s.io, "+websocketBearerPrefix+base64.RawURLEncoding.EncodeToString([]byte(key)))
	if got := bearerToken(req); got != key {
		t.Fatalf("from the WebSocket header: got %q", got)
	}
	req.Header.Set("Authorization", "bearer "+key)
	if got := bearerToken(req); got != key {
		t.Fatalf("from Authorization: got %q", got)
	}
}

// TestKeyScopeLeavesOnlyDiscoveryOpen: a Standard-scope key may read
// discovery, OpenAPI and the version, and nothing else.
func TestKeyScopeLeavesOnlyDiscoveryOpen(t *testing.T) {
	standard := &user.DefaultInfo{Name: "ops@example.com", Extra: map[string][]string{identity.KeyScopeExtra: {"Standard"}}}
	admin := &user.DefaultInfo{Name: "ops@example.com", Extra: map[string][]string{identity.KeyScopeExtra: {"Admin"}}}
	for _, c := range []struct {
		who      user.Info
		attrs    authorizer.AttributesRecord
		decision authorizer.Decision
	}{
		{standard, authorizer.AttributesRecord{Verb: "get", Path: "/openapi/v3"}, authorizer.DecisionNoOpinion},
		{standard, authorizer.AttributesRecord{Verb: "get", Path: "/apis/management.hub.minimax.io/v1alpha1"}, authorizer.DecisionNoOpinion},
		{standard, authorizer.AttributesRecord{Verb: "get", Path: "/version"}, authorizer.DecisionNoOpinion},
		{standard, authorizer.AttributesRecord{Verb: "get", Path: "/metrics"}, authorizer.DecisionDeny},
		{standard, authorizer.AttributesRecord{Verb: "put", Path: "/debug/flags/v"}, authorizer.DecisionDeny},
		{standard, authorizer.AttributesRecord{Verb: "get", Path: "/apiserver-debug"}, authorizer.DecisionDeny},
		{standard, authorizer.AttributesRecord{Verb: "create", ResourceRequest: true, Resource: "usagereports"}, authorizer.DecisionDeny},
		{admin, authorizer.AttributesRecord{Verb: "create", ResourceRequest: true, Resource: "usagereports"}, authorizer.DecisionNoOpinion},
		{&user.DefaultInfo{Name: "alice"}, authorizer.AttributesRecord{Verb: "get", Path: "/metrics"}, authorizer.DecisionNoOpinion},
	} {
		c.attrs.User = c.who
		if d, reason, _ := authorizeKeyScope(context.Background(), c.attrs); d != c.decision {
			t.Errorf("%s %s %s: got %v (%s), want %v", c.who.GetExtra()[identity.KeyScopeExtra], c.attrs.Verb, c.attrs.Path+c.attrs.Resource, d, reason, c.decision)
		}
	}
}

// TestUsageQueriesInFlightAreBounded: past MaxInFlight queries at once, the
// next waits a little and is then refused with 429, not queued forever;
// a freed slot serves the next.
func TestUsageQueriesInFlightAreBounded(t *testing.T) {
	c := &UsageClient{}
	ctx := context.Background()
	releases := make([]func(), 0, MaxInFlight)
	for range MaxInFlight {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	_, err := c.acquire(ctx)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("past the bound: got %v, want 429", err)
	}
	if !errors.Is(usageUnavailable(ctx, err), err) {
		t.Fatal("a 429 must reach the caller as it is")
	}
	releases[0]()
	if _, err := c.acquire(ctx); err != nil {
		t.Fatalf("after a slot is freed: %v", err)
	}
}

// TestRefusalsNameTheRole: what RBAC leaves refused is refused naming the
// least hub role that may do it; what no hub role may do is left to
// Kubernetes' message.
func TestRefusalsNameTheRole(t *testing.T) {
	for _, c := range []struct {
		resource, verb string
		want           authorizer.Decision
		reason         string
	}{
		{"usagereports", "create", authorizer.DecisionDeny, "every hub role (Viewer and up) may"},
		{"keyrequests", "create", authorizer.DecisionDeny, "every hub role (Viewer and up) may"},
		{"keyrequests", "delete", authorizer.DecisionNoOpinion, ""},
	} {
		a := authorizer.AttributesRecord{ResourceRequest: true, APIGroup: "management.hub.minimax.io", Resource: c.resource, Verb: c.verb}
		got, reason, err := explainRefusal(context.Background(), a)
		if err != nil || got != c.want || !strings.HasPrefix(reason, c.reason) {
			t.Errorf("%s %s: got %v %q %v; want %v %q", c.verb, c.resource, got, reason, err, c.want, c.reason)
		}
	}
	err := asCaller(apierrors.NewForbidden(schema.GroupResource{Group: "hub.minimax.io", Resource: "apikeys"}, "k",
		errors.New(`User "v" cannot create resource "apikeys" in API group "hub.minimax.io" in the namespace "p"`)), "create", "apikeys")
	if !strings.HasSuffix(err.Error(), `in the namespace "p": needs the Developer role in this project (the Project's access list names you), or the Admin or Owner role`) {
		t.Errorf("an APIKey refused: %v", err)
	}
	invalid := apierrors.NewBadRequest("spec.scope")
	if !errors.Is(asCaller(invalid, "create", "apikeys"), invalid) {
		t.Errorf("other refusals go as they are")
	}
}
