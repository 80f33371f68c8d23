// Package billing computes billing cycles: the monthly windows over which
// usage is summed, caps are enforced and invoices are cut.
package billing

import "time"

// Cycle is the half-open window [Start, End) of one billing cycle.
type Cycle struct {
	Start time.Time
	End   time.Time
}

// Contains reports whether t falls inside the cycle.
func (c Cycle) Contains(t time.Time) bool {
	return !t.Before(c.Start) && t.Before(c.End)
}

// CycleAt returns the billing cycle that contains now, for cycles that start at
// midnight in loc on startDay of each month. startDay must be between 1 and 28
// (the API enforces it), so every month has exactly one cycle start.
func CycleAt(now time.Time, startDay int, loc *time.Location) Cycle {
	local := now.In(loc)
	start := time.Date(local.Year(), local.Month(), startDay, 0, 0, 0, 0, loc)
	if local.Before(start) {
		start = time.Date(local.Year(), local.Month()-1, startDay, 0, 0, 0, 0, loc)
	}
	end := time.Date(start.Year(), start.Month()+1, startDay, 0, 0, 0, 0, loc)
	return Cycle{Start: start, End: end}
}

// OrganizationCycle is the billing cycle at now of an organization whose
// cycles start on startDay at midnight in the IANA zone timeZone; when the
// zone is unknown or startDay is unset (no organization yet), it is the
// calendar month in UTC. Caps, their enforcement in the gateway and the
// Retry-After of a refused call all count cycles this way, so they agree
// at the boundary whether or not the Organization's status has rolled yet.
func OrganizationCycle(startDay int32, timeZone string, now time.Time) Cycle {
	if startDay >= 1 {
		if loc, err := time.LoadLocation(timeZone); err == nil {
			return CycleAt(now, int(startDay), loc)
		}
	}
	return CycleAt(now, 1, time.UTC)
}
