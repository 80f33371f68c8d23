package metrics

import (
	"crypto/tls"
	"errors"
	"net/http"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/minimax/platform-hub/internal/serving"
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
		// The endpoint's server is controller-runtime's, which bounds
		// headers and idle connections only: each request gets a read and
		// a write deadline too.
		o.FilterProvider = func(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
			authn, err := filters.WithAuthenticationAndAuthorization(c, hc)
			if err != nil {
				return nil, err
			}
			return func(log logr.Logger, h http.Handler) (http.Handler, error) {
				h, err := authn(log, h)
				return serving.WithDeadlines(h, serving.Metrics), err
			}, nil
		}
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}
