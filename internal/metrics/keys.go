// Package metrics holds the hub's Prometheus collectors.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// projectLabel names a project on every hub metric.
const projectLabel = "project"

var (
	apiKeysDesc = prometheus.NewDesc("hub_apikeys",
		"Number of API keys by project, phase and scope.",
		[]string{projectLabel, "phase", "scope"}, nil)
	apiKeyExpiryDesc = prometheus.NewDesc("hub_apikey_expiration_timestamp_seconds",
		"When each API key expires, as a Unix timestamp; keys that never expire are absent. "+
			"Alert on (hub_apikey_expiration_timestamp_seconds - time()) < 7*86400.",
		// The project is the key's namespace; a label named namespace would
		// clash with the one the Prometheus Operator adds to every target.
		[]string{"name", "key_id", projectLabel}, nil)
)

// KeyCollector exports API key metrics, computed from the manager's informer
// cache at scrape time (the kube-state-metrics way), so they never drift from
// the resources. Only public key IDs appear in labels, never key material.
type KeyCollector struct {
	// Reader lists APIKeys; it must be the manager's cached client.
	Reader client.Reader
}

var _ prometheus.Collector = &KeyCollector{}

// Describe sends the metric descriptions.
func (c *KeyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- apiKeysDesc
	ch <- apiKeyExpiryDesc
}

// Collect lists the keys and sends their metrics.
func (c *KeyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list := &hubv1.APIKeyList{}
	// The objects are only read here, so the cache need not copy them.
	if err := c.Reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing API keys for metrics")
		ch <- prometheus.NewInvalidMetric(apiKeysDesc, err)
		return
	}

	type group struct{ project, phase, scope string }
	counts := map[group]int{}
	for i := range list.Items {
		key := &list.Items[i]
		phase := string(key.Status.Phase)
		if phase == "" {
			phase = string(hubv1.KeyPending)
		}
		counts[group{project: key.Namespace, phase: phase, scope: string(key.Spec.Scope)}]++
		// Only keys that can still be used: a revoked or expired key's
		// expiry would show in "expiring within a week" queries.
		if key.Status.ExpiresAt != nil && key.Status.KeyID != "" && !key.Spec.Revoked &&
			key.Status.Phase != hubv1.KeyRevoked && key.Status.Phase != hubv1.KeyExpired {
			ch <- prometheus.MustNewConstMetric(apiKeyExpiryDesc, prometheus.GaugeValue,
				float64(key.Status.ExpiresAt.Unix()), key.Name, key.Status.KeyID, key.Namespace)
		}
	}
	for g, n := range counts {
		ch <- prometheus.MustNewConstMetric(apiKeysDesc, prometheus.GaugeValue, float64(n), g.project, g.phase, g.scope)
	}
}
