package dashboard

import (
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/csvexport"
)

// callsPageSize is how many calls a page of a key's call log shows.
const callsPageSize = 50

// keyData is what a key's page shows: the key, and its call log in the
// current billing cycle, a page at a time.
type keyData struct {
	Row   keyRow
	Calls []mgmtv1alpha1.UsageRecord
	// Next continues the log; empty on its last page.
	Next string
}

// keyPage shows a key and its calls: the management API's usage records
// of the key's ID, read as the member.
func (s *Server) keyPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	key, project, ok := s.visibleKey(w, r, v)
	if !ok {
		return
	}
	data := keyData{Row: rowOf(v, key, project, s.o.Clock.Now())}
	if key.Status.KeyID != "" {
		page, err := s.calls(r, v, key.Status.KeyID, callsPageSize, r.URL.Query().Get("continue"))
		if err != nil {
			code, message := refusal(err)
			s.fail(w, r, code, message)
			return
		}
		data.Calls, data.Next = page.Items, page.Continue
	}
	s.render(w, r, http.StatusOK, "key", s.pageOf(v, "/keys"), data)
}

// calls reads a page of a key ID's usage records, as the member.
func (s *Server) calls(r *http.Request, v *viewer, keyID string, limit int64, cont string) (*mgmtv1alpha1.UsageRecordList, error) {
	as, err := s.asMember(r, v)
	if err != nil {
		return nil, err
	}
	page := &mgmtv1alpha1.UsageRecordList{}
	opts := []client.ListOption{client.MatchingFields{mgmtv1alpha1.FieldKeyID: keyID}, client.Limit(limit)}
	if cont != "" {
		opts = append(opts, client.Continue(cont))
	}
	return page, as.List(r.Context(), page, opts...)
}

// callsCSV exports a key's call log in the current billing cycle as CSV
// (the management API's columns), every page of it.
func (s *Server) callsCSV(w http.ResponseWriter, r *http.Request, v *viewer) {
	key, _, ok := s.visibleKey(w, r, v)
	if !ok {
		return
	}
	page := &mgmtv1alpha1.UsageRecordList{}
	if key.Status.KeyID != "" {
		var err error
		if page, err = s.calls(r, v, key.Status.KeyID, maxCallsPage, ""); err != nil {
			code, message := refusal(err)
			s.fail(w, r, code, message)
			return
		}
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+key.Name+`-calls.csv"`)
	cw := csvexport.NewWriter(w)
	write := func(row []string) bool { return cw.Write(row) == nil }
	if !write(mgmtv1alpha1.UsageRecordCSVHeader) {
		return
	}
	for {
		for i := range page.Items {
			if !write(page.Items[i].CSVRow()) {
				return
			}
		}
		if page.Continue == "" {
			break
		}
		next, err := s.calls(r, v, key.Status.KeyID, maxCallsPage, page.Continue)
		if err != nil {
			// The answer has begun: end it, and say so in the log.
			s.o.Log.Error(err, "Exporting a key's calls", "key", key.Namespace+"/"+key.Name)
			cw.Flush()
			return
		}
		page = next
	}
	cw.Flush()
}

// maxCallsPage is the page size of exports: the management API's largest.
const maxCallsPage = 1000
