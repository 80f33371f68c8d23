package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// usageRecords serves UsageRecords: listed only, page by page, from the
// usage server.
type usageRecords struct {
	usage *UsageClient
	cache client.Reader
	now   func() time.Time
}

var (
	_ rest.Lister               = (*usageRecords)(nil)
	_ rest.Scoper               = (*usageRecords)(nil)
	_ rest.SingularNameProvider = (*usageRecords)(nil)
)

func (r *usageRecords) New() runtime.Object     { return &mgmtv1alpha1.UsageRecord{} }
func (r *usageRecords) NewList() runtime.Object { return &mgmtv1alpha1.UsageRecordList{} }
func (r *usageRecords) Destroy()                {}
func (r *usageRecords) NamespaceScoped() bool   { return false }
func (r *usageRecords) GetSingularName() string { return "usagerecord" }

// List answers one page of records: the range and filters come from the
// field selector, the page from limit and continue.
func (r *usageRecords) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	req, err := r.request(ctx, opts)
	if err != nil {
		return nil, err
	}
	page, err := r.usage.Records(ctx, req)
	var refused *usageServerError
	switch {
	case errors.As(err, &refused) && refused.status == http.StatusBadRequest:
		return nil, apierrors.NewBadRequest(refused.message)
	case err != nil:
		return nil, usageUnavailable(ctx, err)
	}
	list := &mgmtv1alpha1.UsageRecordList{Items: make([]mgmtv1alpha1.UsageRecord, 0, len(page.Records))}
	list.Continue = page.Continue
	for _, rec := range page.Records {
		list.Items = append(list.Items, mgmtv1alpha1.UsageRecord{ObjectMeta: metav1.ObjectMeta{Name: rec.ID},
			Time: metav1.NewTime(rec.Time), Project: rec.Project, KeyID: rec.KeyID, Service: rec.Service, Endpoint: rec.Endpoint,
			Model: rec.Model, InputTokens: rec.InputTokens, CachedInputTokens: rec.CachedInputTokens,
			OutputTokens: rec.OutputTokens, VideoSeconds: rec.VideoSeconds,
			StorageByteHours: rec.StorageByteHours, StatusCode: int32(rec.StatusCode), Cost: rec.Cost, Unpriced: rec.Unpriced,
			Currency: page.Currency})
	}
	return list, nil
}

// request reads the field selector: startTime and endTime (default: the
// current billing cycle), and the filters, each with "=".
func (r *usageRecords) request(ctx context.Context, opts *metainternalversion.ListOptions) (usagereport.RecordsRequest, error) {
	req := usagereport.RecordsRequest{Continue: opts.Continue}
	if opts.Limit > 0 {
		req.Limit = int(min(opts.Limit, usagereport.MaxRecordsLimit)) // a server may answer fewer, with continue
	}
	if opts.FieldSelector != nil {
		for _, f := range opts.FieldSelector.Requirements() {
			if f.Operator != selection.Equals && f.Operator != selection.DoubleEquals {
				return req, apierrors.NewBadRequest(fmt.Sprintf("field selector %s: only = is supported for UsageRecords", f.Field))
			}
			if err := setRecordField(&req, f.Field, f.Value); err != nil {
				return req, apierrors.NewBadRequest(err.Error())
			}
		}
	}
	if req.From.IsZero() || req.To.IsZero() {
		cycle, _, err := currentCycle(ctx, r.cache, r.now())
		if err != nil {
			return req, err
		}
		if req.From.IsZero() {
			req.From = cycle.Start
		}
		if req.To.IsZero() {
			req.To = cycle.End
		}
	}
	return req, nil
}

func setRecordField(req *usagereport.RecordsRequest, field, value string) error {
	switch field {
	case mgmtv1alpha1.FieldStartTime, mgmtv1alpha1.FieldEndTime:
		t, err := time.Parse(time.RFC3339, value)
		if err != nil {
			return fmt.Errorf("field selector %s: %q is not an RFC 3339 time, such as 2026-11-27T10:00:00Z", field, value)
		}
		if field == mgmtv1alpha1.FieldStartTime {
			req.From = t
		} else {
			req.To = t
		}
	case mgmtv1alpha1.FieldProject:
		req.Filter.Project = value
	case mgmtv1alpha1.FieldKeyID:
		req.Filter.KeyID = value
	case "service":
		req.Filter.Service = value
	case "model":
		req.Filter.Model = value
	case "endpoint":
		req.Filter.Endpoint = value
	default:
		return fmt.Errorf("field selector %s is not supported for UsageRecords; use %s", field, strings.Join(mgmtv1alpha1.UsageRecordFields, ", "))
	}
	return nil
}

// ConvertToTable shows each call: what `kubectl get usagerecords` prints.
func (r *usageRecords) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		timeColumn,
		{Name: "Project", Type: text},
		{Name: "Key ID", Type: text},
		{Name: "Endpoint", Type: text},
		{Name: "Model", Type: text},
		inputTokensColumn,
		outputTokensColumn,
		{Name: "Cost", Type: text},
		{Name: "Status", Type: count},
		wideNameColumn,
	}}
	list, ok := obj.(*mgmtv1alpha1.UsageRecordList)
	if !ok {
		return nil, fmt.Errorf("not a UsageRecordList: %T", obj)
	}
	table.Continue = list.Continue
	for i := range list.Items {
		u := &list.Items[i]
		table.Rows = append(table.Rows, metav1.TableRow{Object: runtime.RawExtension{Object: u}, Cells: []any{
			u.Time.UTC().Format(time.RFC3339), u.Project, u.KeyID, u.Endpoint, u.Model, u.InputTokens, u.OutputTokens, u.Cost,
			int64(u.StatusCode), u.Name}})
	}
	return table, nil
}
