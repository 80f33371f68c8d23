// Package jsonl writes the spool files in which the hub keeps records that
// wait for the usage server (usage events in the gateway, audit entries in
// the manager): one JSON value per line, synced to disk.
package jsonl

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
)

// WriteAndClose writes items to f, one per line, syncs and closes it. f is
// closed on error too.
func WriteAndClose[T any](f *os.File, items []T) error {
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range items {
		if err := enc.Encode(&items[i]); err != nil {
			_ = f.Close()
			return err
		}
	}
	return errors.Join(w.Flush(), f.Sync(), f.Close())
}
