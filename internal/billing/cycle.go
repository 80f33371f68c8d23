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
