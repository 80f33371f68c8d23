package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/audit"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// UsageClient asks the server role for usage, as the management API's own
// identity: the API server has authorized the person asking already.
type UsageClient struct {
	// URL is the usage server's base URL.
	URL string
	// HTTP reaches it (its CA, timeouts).
	HTTP *http.Client
	// Token is the bearer token the usage server checks (TokenReview, then
	// create usagereports.hub.minimax.io).
	Token func() (string, error)

	// slots bounds the usage queries in flight from this replica
	// (MaxInFlight): callers with a hub key do not pass kube-apiserver's
	// priority and fairness, so the bound is the management API's own.
	slotsOnce sync.Once
	slots     chan struct{}
}

// MaxInFlight is how many usage queries (reports, pages of records) one
// management API replica has the usage server answer at once; more wait a
// little, then get 429.
const MaxInFlight = 8

// queueWait is how long a query waits for a slot before it is refused.
const queueWait = 2 * time.Second

// acquire takes a slot for one query, or answers 429 Too Many Requests
// (with Retry-After) when none frees up within queueWait.
func (c *UsageClient) acquire(ctx context.Context) (func(), error) {
	c.slotsOnce.Do(func() { c.slots = make(chan struct{}, MaxInFlight) })
	timer := time.NewTimer(queueWait)
	defer timer.Stop()
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	case <-timer.C:
		return nil, apierrors.NewTooManyRequests("the management API is answering as many usage queries as it may; retry in a moment", 1)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// usageServerError is an answer of the usage server other than 200.
type usageServerError struct {
	status  int
	message string
	// field is the request field the server refused, when it named one.
	field string
}

func (e *usageServerError) Error() string {
	return fmt.Sprintf("the usage server answered %d: %s", e.status, e.message)
}

// Report asks for a usage report.
func (c *UsageClient) Report(ctx context.Context, req usagereport.Request) (*usagereport.Report, error) {
	release, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	resp, err := serverclient.Post(ctx, c.HTTP, c.URL+usagereport.Path, c.Token, req)
	if err != nil {
		return nil, err
	}
	report := &usagereport.Report{}
	if err := decodeAnswer(resp, report); err != nil {
		return nil, err
	}
	return report, nil
}

// Records asks for a page of usage records.
func (c *UsageClient) Records(ctx context.Context, req usagereport.RecordsRequest) (*usagereport.RecordsPage, error) {
	q := url.Values{}
	q.Set("startTime", req.From.UTC().Format(time.RFC3339Nano))
	q.Set("endTime", req.To.UTC().Format(time.RFC3339Nano))
	for name, v := range map[string]string{mgmtv1alpha1.FieldProject: req.Filter.Project, "keyID": req.Filter.KeyID, "service": req.Filter.Service,
		"model": req.Filter.Model, "endpoint": req.Filter.Endpoint, "continue": req.Continue} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	page := &usagereport.RecordsPage{}
	if err := c.get(ctx, usagereport.RecordsPath, q, page); err != nil {
		return nil, err
	}
	return page, nil
}

// AuditPage is a page of the audit log, as the usage server answers it.
type AuditPage struct {
	Entries  []auditlog.Entry `json:"entries"`
	Continue string           `json:"continue,omitempty"`
}

// AuditEvents asks for a page of the audit log; q holds the usage server's
// parameters (from, to, actor, kind, namespace, name, limit, continue).
func (c *UsageClient) AuditEvents(ctx context.Context, q url.Values) (*AuditPage, error) {
	q.Set("paging", "true")
	page := &AuditPage{}
	if err := c.get(ctx, audit.Path, q, page); err != nil {
		return nil, err
	}
	return page, nil
}

// AlertPage is a page of the alert history, as the usage server answers it.
type AlertPage struct {
	Alerts   []alertlog.Alert `json:"alerts"`
	Continue string           `json:"continue,omitempty"`
}

// Alerts asks for a page of the alert history; q holds the usage server's
// parameters (from, to, project, kind, limit, continue).
func (c *UsageClient) Alerts(ctx context.Context, q url.Values) (*AlertPage, error) {
	q.Set("paging", "true")
	page := &AlertPage{}
	if err := c.get(ctx, alertlog.Path, q, page); err != nil {
		return nil, err
	}
	return page, nil
}

// get asks the usage server GET path?q, within a slot, and decodes a 200
// answer into out.
func (c *UsageClient) get(ctx context.Context, path string, q url.Values, out any) error {
	release, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	bearer, err := c.Token()
	if err != nil {
		return fmt.Errorf("reading the ServiceAccount token: %w", err)
	}
	httpReq.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := c.HTTP.Do(httpReq)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

// decodeAnswer decodes a 200 answer of the usage server into out, or turns
// another into a usageServerError; it closes the body.
func decodeAnswer(resp *http.Response, out any) error {
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the usage server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return &usageServerError{status: resp.StatusCode, message: e.Error.Message, field: e.Error.Field}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the usage server's answer: %w", err)
	}
	return nil
}

// usageUnavailable is the answer when the usage server cannot answer: the
// cause (addresses, the token's file, the server's words) goes to the log,
// the caller gets a fixed message.
func usageUnavailable(ctx context.Context, cause error) error {
	var status apierrors.APIStatus
	if errors.As(cause, &status) {
		return cause // already an answer, such as 429 while the queries in flight are at their bound
	}
	klog.FromContext(ctx).Error(cause, "Asking the usage server")
	return apierrors.NewServiceUnavailable("the usage server cannot answer right now; retry later")
}
