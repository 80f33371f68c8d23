package gateway_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/minimax/platform-hub/internal/gateway"
)

// TestGatewayMetricsNeedAuthorization: as the manager's and the server's,
// the gateway's metrics are served over HTTPS to callers the API server
// authenticates and allows get on /metrics; anyone else gets 401 or 403.
func TestGatewayMetricsNeedAuthorization(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	metricsAddr := freeAddr()
	mgr, _, err := gateway.NewManager(ctx, env.Cluster.Config, gateway.Options{
		ListenAddr: freeAddr(), Upstream: upstreamURL, ServerURL: "http://" + freeAddr(),
		Token: func() (string, error) { return "unused", nil }, SpoolDir: filepath.Join(t.TempDir(), "spool"),
		MetricsAddr: metricsAddr, SecureMetrics: true, ProbeAddr: "0", Clock: testClock,
	})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.Start(ctx) }()

	reader, err := env.ServiceAccountToken(ctx, "metrics-reader", rbacv1.PolicyRule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}})
	g.Expect(err).NotTo(HaveOccurred())
	stranger, err := env.ServiceAccountToken(ctx, "metrics-stranger")
	g.Expect(err).NotTo(HaveOccurred())
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the endpoint's certificate is self-signed
	get := func(scheme, token string) int {
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+metricsAddr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := insecure.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Eventually(func() int { return get("https", reader) }, 20*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
	g.Expect(get("https", "")).To(Equal(http.StatusUnauthorized))
	g.Expect(get("https", stranger)).To(Equal(http.StatusForbidden))
	g.Expect(get("http", "")).NotTo(Equal(http.StatusOK), "no plain HTTP")
}
