package apiserver_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestUsageAsCSV: last month's usage as CSV, with kubectl (status.csv)
// and with Accept: text/csv through the aggregator, and a page of usage
// records the same way; each row's figures are the stored events', and a
// cell that a spreadsheet would run as a formula is neutralised.
func TestUsageAsCSV(t *testing.T) {
	g := NewWithT(t)
	e := startEnv(t, g)
	at := time.Date(2026, 10, 14, 9, 30, 0, 0, time.UTC)
	_, err := e.store.Insert(context.Background(), []usage.Event{
		{ID: "c1", Time: at, Project: "chatbot", KeyID: "AbCdEf0123", Service: pricing.Chat, Endpoint: "/v1/chat/completions",
			Model: "MiniMax-M2", InputTokens: 1000, CachedInputTokens: 300, OutputTokens: 500, StatusCode: 200},
		{ID: "c2", Time: at.Add(24 * time.Hour), Project: "research", KeyID: "ZyXwVu9876", Service: pricing.Chat,
			Endpoint: "/v1/chat/completions", Model: "=HYPERLINK(\"https://evil.example\")", InputTokens: 7, StatusCode: 200},
	})
	g.Expect(err).NotTo(HaveOccurred())
	e.member(g, "viewer@example.com", "Viewer")
	lastMonth := `apiVersion: management.hub.minimax.io/v1alpha1
kind: UsageReport
spec:
  startTime: "2026-10-01T00:00:00Z"
  endTime: "2026-11-01T00:00:00Z"
  timeZone: UTC
  granularity: Month
  groupBy: [Project, Model]
  csv: true
`
	out, err := e.runWithInput("viewer@example.com", lastMonth, "create", "-f", "-", "-o", "jsonpath={.status.csv}")
	g.Expect(err).NotTo(HaveOccurred(), out)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(rows).To(Equal([][]string{
		{"start_time", "end_time", "project", "key_id", "service", "model", "endpoint", "member", "calls", "input_tokens",
			"cached_input_tokens", "output_tokens", "video_seconds", "storage_byte_hours", "cost", "currency", "unpriced_calls"},
		{"2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "chatbot", "", "", "MiniMax-M2", "", "", "1", "1000", "300", "500", "0", "0",
			"0.0009", "USD", "0"},
		{"2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "research", "", "", `'=HYPERLINK("https://evil.example")`, "", "", "1", "7", "0",
			"0", "0", "0", "0", "USD", "1"},
	}))

	// The same report as the whole answer, for clients that set Accept.
	hc, err := rest.HTTPClientFor(e.cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	base := strings.TrimSuffix(e.cluster.Config.Host, "/") + "/apis/management.hub.minimax.io/v1alpha1"
	body := strings.Replace(lastMonth, "  csv: true\n", "", 1)
	req, _ := http.NewRequest(http.MethodPost, base+"/usagereports", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Accept", "text/csv")
	answer := do(g, hc, req)
	g.Expect(answer).To(Equal(out), "the same CSV")

	// A page of records.
	req, _ = http.NewRequest(http.MethodGet, base+"/usagerecords?fieldSelector=startTime%3D2026-10-01T00:00:00Z,endTime%3D2026-11-01T00:00:00Z&limit=1", nil)
	req.Header.Set("Accept", "text/csv")
	rows, err = csv.NewReader(strings.NewReader(do(g, hc, req))).ReadAll()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(Equal([][]string{
		{"time", "id", "project", "key_id", "service", "endpoint", "model", "input_tokens", "cached_input_tokens", "output_tokens",
			"video_seconds", "storage_byte_hours", "status_code", "cost", "currency", "unpriced"},
		{"2026-10-14T09:30:00Z", "c1", "chatbot", "AbCdEf0123", "chat", "/v1/chat/completions", "MiniMax-M2", "1000", "300", "500",
			"0", "0", "200", "0.0009", "USD", "false"},
	}))

	// Kinds without a CSV form say so; so do errors.
	req, _ = http.NewRequest(http.MethodGet, base+"/projectusages", nil)
	req.Header.Set("Accept", "text/csv")
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusInternalServerError))
	g.Expect(string(b)).To(ContainSubstring("ProjectUsageList has no CSV form: ask for usage reports or usage records, or for JSON"))
}

// do makes req and returns the body of a successful answer of type
// text/csv.
func do(g Gomega, hc *http.Client, req *http.Request) string {
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	var b bytes.Buffer
	_, err = io.Copy(&b, resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(BeElementOf(http.StatusOK, http.StatusCreated), b.String())
	g.Expect(resp.Header.Get("Content-Type")).To(HavePrefix("text/csv"))
	return b.String()
}
