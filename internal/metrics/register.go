package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
