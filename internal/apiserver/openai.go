package apiserver

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/openaiadmin"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// openAIUsage is the usage server as the OpenAI-compatible surface asks
// it: refusals become 400, other failures 503, as for the management
// API's own resources.
type openAIUsage struct {
	usage *UsageClient
}

var _ openaiadmin.Usage = openAIUsage{}

func (u openAIUsage) Report(ctx context.Context, req usagereport.Request) (*usagereport.Report, error) {
	report, err := u.usage.Report(ctx, req)
	if err != nil {
		return nil, historyError(ctx, err)
	}
	return report, nil
}

func (u openAIUsage) AuditPage(ctx context.Context, q openaiadmin.AuditQuery) ([]auditlog.Entry, string, error) {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Continue != "" {
		v.Set("continue", q.Continue)
	}
	page, err := u.usage.AuditEvents(ctx, v)
	if err != nil {
		return nil, "", historyError(ctx, err)
	}
	return page.Entries, page.Continue, nil
}

// authorizeOpenAIPaths lets authenticated callers reach the
// OpenAI-compatible surface, a non-resource path no RBAC role names: the
// surface authorizes each operation itself (as the caller in
// kube-apiserver, or by asking the delegated authorizer).
func authorizeOpenAIPaths(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.IsResourceRequest() || a.GetUser() == nil || !strings.HasPrefix(a.GetPath(), openaiadmin.Prefix) {
		return authorizer.DecisionNoOpinion, "", nil
	}
	return authorizer.DecisionAllow, "", nil
}
