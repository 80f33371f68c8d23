package controllers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestAPIKeyMetrics reads the manager's real metrics endpoint.
func TestAPIKeyMetrics(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "keys-metrics"
	activeProject(t, ns)

	readOnly := newAPIKey(ns, "dashboards")
	readOnly.Spec.Scope = hubv1.ScopeRead
	readOnly.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime30Days)
	standard := newAPIKey(ns, "inference")
	standard.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetimeNever)
	for _, k := range []*hubv1.APIKey{readOnly, standard} {
		g.Expect(k8sClient.Create(ctx, k)).To(Succeed())
		waitForKeyPhase(g, k, hubv1.KeyActive)
	}

	g.Eventually(scrape).Should(And(
		ContainSubstring(fmt.Sprintf(`hub_apikeys{phase="Active",project=%q,scope="Read"} 1`, ns)),
		ContainSubstring(fmt.Sprintf(`hub_apikeys{phase="Active",project=%q,scope="Standard"} 1`, ns)),
		ContainSubstring(fmt.Sprintf(`hub_apikey_expiration_timestamp_seconds{key_id=%q,name="dashboards",project=%q} %s`,
			readOnly.Status.KeyID, ns, fmt.Sprintf("%g", float64(readOnly.Status.ExpiresAt.Unix())))),
	))
	g.Expect(scrape()).NotTo(ContainSubstring(fmt.Sprintf(`key_id=%q`, standard.Status.KeyID)),
		"a key that never expires has no expiry")

	// A revoked key can no longer be used: it leaves "expiring within a
	// week" queries.
	patch := client.MergeFrom(readOnly.DeepCopy())
	readOnly.Spec.Revoked = true
	g.Expect(k8sClient.Patch(ctx, readOnly, patch)).To(Succeed())
	g.Eventually(scrape).ShouldNot(ContainSubstring(fmt.Sprintf(`hub_apikey_expiration_timestamp_seconds{key_id=%q`,
		readOnly.Status.KeyID)))
}

func scrape() (string, error) {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
