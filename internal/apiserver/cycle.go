package apiserver

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
)

// currentCycle is the organization's billing cycle at now and the IANA
// zone it is cut in: from the Organization in the cache, or the calendar
// month in UTC while there is none (as the usage server and the caps
// count it).
func currentCycle(ctx context.Context, cache client.Reader, now time.Time) (billing.Cycle, string, error) {
	org := &hubv1.Organization{}
	if err := cache.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return billing.Cycle{}, "", err
	}
	cycle := billing.OrganizationCycle(org.Spec.Billing.CycleStartDay, org.Spec.Billing.TimeZone, now)
	zone := org.Spec.Billing.TimeZone
	if cycle.Start.Location() == time.UTC {
		zone = "UTC"
	}
	return cycle, zone, nil
}
