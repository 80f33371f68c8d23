package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/audit"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/csvexport"
	"github.com/minimax/platform-hub/internal/sqldb"
)

// AuditPath takes audit entries from the manager (POST) and lists them
// (GET).
const AuditPath = audit.Path

// MaxAuditEntries is the most entries one POST may carry.
const MaxAuditEntries = 1000

// AuditRequest is the body of a POST to AuditPath.
type AuditRequest struct {
	Entries []auditlog.Entry `json:"entries"`
}

// AuditResponse is the answer to a GET of AuditPath.
type AuditResponse struct {
	// Entries are oldest first; under a limit, the newest are kept, but
	// for a page (paging=true), which holds the oldest after continue.
	Entries []auditlog.Entry `json:"entries"`
	// Continue, in a page, reads on: pass it back as continue. Empty on
	// the last page.
	Continue string `json:"continue,omitempty"`
}

func (s *Server) recordAudit(w http.ResponseWriter, r *http.Request) {
	var req AuditRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBatchBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: `the body must be JSON of the form {"entries": [...]}: ` + err.Error()})
		return
	}
	if len(req.Entries) > MaxAuditEntries {
		writeError(w, http.StatusRequestEntityTooLarge, errorBody{Message: fmt.Sprintf("send at most %d entries per request", MaxAuditEntries)})
		return
	}
	for i, e := range req.Entries {
		var missing []string
		for _, f := range []struct {
			name  string
			empty bool
		}{{"id", e.ID == ""}, {"time", e.Time.IsZero()}, {"actor", e.Actor == ""}, {"kind", e.Kind == ""}, {"name", e.Name == ""}} {
			if f.empty {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 || (e.Action != "create" && e.Action != "update" && e.Action != "delete") {
			writeError(w, http.StatusBadRequest, errorBody{Index: &i, Message: fmt.Sprintf(
				"an audit entry needs id, time, actor, kind, name and an action of create, update or delete; entry %d lacks %v or has action %q",
				i, missing, e.Action)})
			return
		}
	}
	if err := s.Audit.RecordAudit(r.Context(), req.Entries); err != nil {
		s.Log.Error(err, "Recording audit entries", "entries", len(req.Entries))
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: storeUnavailable})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"stored": len(req.Entries)})
}

// listAudit answers GET /v1/audit/events. Parameters, all optional: from and
// to (RFC 3339), actor, kind, namespace, name, limit (default 1000, at most
// 100000), and paging=true or continue for pages in time order (see
// pageAfter). With format=csv (or Accept: text/csv) the answer is CSV.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := auditlog.Filter{Actor: q.Get("actor"), Kind: q.Get("kind"), Namespace: q.Get("namespace"), Name: q.Get("name"), Limit: 1000}
	if err := timeRange(q, &f.From, &f.To); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: err.Error()})
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100_000 {
			writeError(w, http.StatusBadRequest, errorBody{Message: fmt.Sprintf("limit must be a number from 1 to 100000, not %q", v)})
			return
		}
		f.Limit = n
	}
	var err error
	if f.After, err = pageAfter(q); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: err.Error()})
		return
	}
	if f.After != nil {
		f.Limit++ // one more, to tell whether a next page exists
	}
	entries, err := s.Audit.AuditEntries(r.Context(), f)
	if err != nil {
		s.Log.Error(err, "Listing audit entries")
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: storeUnavailable})
		return
	}
	if q.Get("format") == "csv" || strings.HasPrefix(r.Header.Get("Accept"), "text/csv") {
		writeAuditCSV(w, entries)
		return
	}
	if entries == nil {
		entries = []auditlog.Entry{}
	}
	answer := AuditResponse{Entries: entries}
	if f.After != nil {
		answer.Entries, answer.Continue = nextPage(entries, f.Limit-1, func(e auditlog.Entry) sqldb.Cursor {
			return sqldb.Cursor{Time: e.Time, ID: e.ID}
		})
	}
	writeJSON(w, http.StatusOK, answer)
}

// writeAuditCSV writes one row per entry (RFC 4180), field changes as
// "field: old -> new", separated by "; ".
func writeAuditCSV(w http.ResponseWriter, entries []auditlog.Entry) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	cw := csvexport.NewWriter(w)
	_ = cw.Write([]string{"time", "actor", "groups", "action", "kind", "namespace", "name", "uid", "changes", "id", "resource_version", "via", "key_id"})
	for _, e := range entries {
		changes := make([]string, 0, len(e.Changes))
		for _, c := range e.Changes {
			changes = append(changes, fmt.Sprintf("%s: %s -> %s", c.Field, c.Old, c.New))
		}
		_ = cw.Write([]string{e.Time.UTC().Format(time.RFC3339Nano), e.Actor, strings.Join(e.Groups, " "), e.Action, e.Kind,
			e.Namespace, e.Name, e.UID, strings.Join(changes, "; "), e.ID, e.ResourceVersion, e.Via, e.KeyID})
	}
	cw.Flush()
}
