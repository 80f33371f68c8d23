package usage

// SpanHits is how many spans of closed hours s has read from its cache.
func SpanHits(s Store) int64 {
	store := s.(*sqlStore)
	store.periods.mu.Lock()
	defer store.periods.mu.Unlock()
	return store.periods.spanHits
}
