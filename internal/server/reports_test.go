package server_test

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestUsageReportAPI: POST /v1/usage/reports answers a priced report to
// callers RBAC allows to create usagereports; a bad request gets 400 with
// the field to change, a caller without the permission 403.
func TestUsageReportAPI(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, g)
	ingest := serviceAccountToken(g, "report-gateway", true)
	code, body := post(g, srv.url, ingest, server.IngestRequest{Events: []usage.Event{chatEvent("r1", 1000, 500), chatEvent("r2", 2000, 0)}})
	g.Expect(code).To(Equal(http.StatusOK), "%v", body)

	reader := serviceAccountTokenWith(g, "report-reader", rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"usagereports"}, Verbs: []string{"create"}})
	request := map[string]any{"startTime": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "endTime": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		"granularity": "day", "groupBy": []string{"project"}}
	code, body = postTo(g, srv.url+server.ReportsPath, reader, request)
	g.Expect(code).To(Equal(http.StatusOK), "%v", body)
	g.Expect(body["currency"]).To(Equal("USD"))
	g.Expect(body["total"]).To(HaveKeyWithValue("calls", 2.0))
	g.Expect(body["total"]).To(HaveKeyWithValue("cost", "0.0015"), "3000 input tokens at 0.30/M and 500 output at 1.20/M")
	g.Expect(body["buckets"]).To(HaveLen(1))
	bucket := body["buckets"].([]any)[0].(map[string]any)
	g.Expect(bucket["start"]).To(Equal("2026-11-27T00:00:00Z"))
	g.Expect(bucket["group"]).To(Equal(map[string]any{"project": "chatbot"}))

	request["groupBy"] = []string{"owner"}
	code, body = postTo(g, srv.url+server.ReportsPath, reader, request)
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body["error"]).To(HaveKeyWithValue("field", "groupBy[0]"))

	code, body = postTo(g, srv.url+server.ReportsPath, reader, []byte(`{"startTime":"2026-11-01T00:00:00Z","unknown":1}`))
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body["error"].(map[string]any)["message"]).To(ContainSubstring("unknown"))

	code, body = postTo(g, srv.url+server.ReportsPath, ingest, request)
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(body["error"].(map[string]any)["message"]).To(ContainSubstring("may not create usagereports.hub.minimax.io"))
}

// TestUsageRecordsAPI: GET /v1/usage/records pages through priced calls for
// callers RBAC allows to list usagerecords.
func TestUsageRecordsAPI(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, g)
	ingest := serviceAccountToken(g, "records-gateway", true)
	code, body := post(g, srv.url, ingest, server.IngestRequest{Events: []usage.Event{chatEvent("c1", 1000, 500), chatEvent("c2", 2000, 0)}})
	g.Expect(code).To(Equal(http.StatusOK), "%v", body)
	reader := serviceAccountTokenWith(g, "records-reader", rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"usagerecords"}, Verbs: []string{"list"}})
	base := srv.url + server.RecordsPath + "?startTime=2026-11-01T00:00:00Z&endTime=2026-12-01T00:00:00Z&project=chatbot"
	var page map[string]any
	g.Expect(getJSON(g, base+"&limit=1", reader, &page)).To(Equal(http.StatusOK))
	g.Expect(page["records"]).To(HaveLen(1))
	record := page["records"].([]any)[0].(map[string]any)
	g.Expect(record["id"]).To(Equal("c1"))
	g.Expect(record["cost"]).To(Equal("0.0009"))
	g.Expect(page["continue"]).NotTo(BeEmpty())
	next := page["continue"].(string)
	page = nil
	g.Expect(getJSON(g, base+"&limit=1&continue="+next, reader, &page)).To(Equal(http.StatusOK))
	g.Expect(page["records"].([]any)[0].(map[string]any)["id"]).To(Equal("c2"))
	g.Expect(page).NotTo(HaveKey("continue"), "the last page")

	var refusal map[string]map[string]any
	g.Expect(getJSON(g, srv.url+server.RecordsPath+"?startTime=yesterday", reader, &refusal)).To(Equal(http.StatusBadRequest))
	g.Expect(getJSON(g, base, ingest, &refusal)).To(Equal(http.StatusForbidden))
}
