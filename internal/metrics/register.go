package metrics

import (
	"crypto/tls"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Register registers c with reg, or returns the equal collector registered
// before: a process that builds a role twice (a restart in a test, `hub dev`)
// keeps counting into the same series instead of failing.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(T); ok {
			return existing
		}
	}
	if err != nil {
		panic(err)
	}
	return c
}

// ServerOptions is how every role serves its metrics endpoint on addr
// ("0" disables it). Secure serves HTTPS, HTTP/1.1 only (HTTP/2 is off
// against its rapid-reset and stream-cancellation attacks, as
// controller-runtime's scaffold advises), behind the API server's
// TokenReview and SubjectAccessReview: a caller needs get on the
// non-resource URL /metrics (the ClusterRole hub-metrics-reader). Without
// Secure it serves plain HTTP with no authentication, for a loopback
// address on a laptop.
func ServerOptions(addr string, secure bool) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr}
	if secure {
		o.SecureServing = true
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}
