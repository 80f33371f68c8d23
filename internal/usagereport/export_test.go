package usagereport

// MonthEarlier is monthEarlier, for tests.
var MonthEarlier = monthEarlier

// SetMaxRows sets the bound on a report's groups and returns what restores
// it.
func SetMaxRows(n int) func() {
	old := maxRows
	maxRows = n
	return func() { maxRows = old }
}
