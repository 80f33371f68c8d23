// Package dashboard will serve the hub's web UI (handlers, templates and
// static assets embedded with go:embed). It reads resource status from an
// informer cache and usage from the usage store; it arrives with the metering
// work, after the API it displays.
package dashboard
