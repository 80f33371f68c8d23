package server

import "context"

// Flush runs one round of the status writer, for tests that drive its clock.
func (w *StatusWriter) Flush(ctx context.Context) error { return w.flush(ctx) }

// Pending is the number of projects with usage still to write.
func (w *StatusWriter) Pending() int { return len(w.pending) }
