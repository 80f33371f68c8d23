//go:build !linux

package devcluster

// stopLeftoverProcesses is a no-op where /proc is unavailable; etcd then
// refuses a data directory that a leftover process still holds.
func stopLeftoverProcesses(string) error { return nil }
