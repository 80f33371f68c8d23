package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/usage"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// usageReports serves UsageReports: create-only, answered from the usage
// server, stored nowhere (the way SubjectAccessReviews are served).
type usageReports struct {
	usage *UsageClient
	// cache reads the Organization, whose billing time zone is the
	// default.
	cache client.Reader
}

var (
	_ rest.Creater              = (*usageReports)(nil) //nolint:misspell // the interface's name
	_ rest.Scoper               = (*usageReports)(nil)
	_ rest.SingularNameProvider = (*usageReports)(nil)
	_ rest.TableConvertor       = (*usageReports)(nil)
)

func (r *usageReports) New() runtime.Object     { return &mgmtv1alpha1.UsageReport{} }
func (r *usageReports) Destroy()                {}
func (r *usageReports) NamespaceScoped() bool   { return false }
func (r *usageReports) GetSingularName() string { return "usagereport" }

// Create answers the report in the object's status.
func (r *usageReports) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc,
	_ *metav1.CreateOptions) (runtime.Object, error) {
	report, ok := obj.(*mgmtv1alpha1.UsageReport)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a UsageReport: %T", obj))
	}
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	req, errs := r.request(ctx, &report.Spec)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(mgmtv1alpha1.SchemeGroupVersion.WithKind("UsageReport").GroupKind(), report.Name, errs)
	}
	answer, err := r.usage.Report(ctx, req)
	var refused *usageServerError
	switch {
	case errors.As(err, &refused) && refused.status == http.StatusBadRequest:
		return nil, apierrors.NewInvalid(mgmtv1alpha1.SchemeGroupVersion.WithKind("UsageReport").GroupKind(), report.Name,
			field.ErrorList{field.Invalid(specPath(refused.field), nil, refused.message)})
	case err != nil:
		return nil, usageUnavailable(ctx, err)
	}
	report.Status = reportStatus(answer, req.TimeZone)
	if report.Spec.CSV {
		var csv strings.Builder
		if err := writeCSV(&csv, reportCSV(report)); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		report.Status.CSV = csv.String()
	}
	report.CreationTimestamp = metav1.Now()
	return report, nil
}

// request turns a spec into the usage server's request, checking what the
// server would refuse, with the spec's field paths.
func (r *usageReports) request(ctx context.Context, spec *mgmtv1alpha1.UsageReportSpec) (usagereport.Request, field.ErrorList) {
	path := field.NewPath("spec")
	var errs field.ErrorList
	req := usagereport.Request{From: spec.StartTime.Time, To: spec.EndTime.Time, TimeZone: spec.TimeZone, Compare: spec.Compare,
		TopGroups: int(spec.TopGroups), GroupTotals: int(spec.GroupTotals),
		Filter: usagereport.Filter{Projects: spec.Projects, KeyIDs: spec.KeyIDs, Services: spec.Services, Models: spec.Models,
			Endpoints: spec.Endpoints, Members: spec.Members}}
	switch spec.Granularity {
	case "":
	case mgmtv1alpha1.GranularityMinute, mgmtv1alpha1.GranularityHour, mgmtv1alpha1.GranularityDay, mgmtv1alpha1.GranularityMonth:
		req.Granularity = usage.Granularity(strings.ToLower(string(spec.Granularity)))
	default:
		errs = append(errs, field.NotSupported(path.Child("granularity"), spec.Granularity, []mgmtv1alpha1.Granularity{
			mgmtv1alpha1.GranularityMinute, mgmtv1alpha1.GranularityHour, mgmtv1alpha1.GranularityDay, mgmtv1alpha1.GranularityMonth}))
	}
	for i, d := range spec.GroupBy {
		dim, ok := dimensions[d]
		if !ok {
			errs = append(errs, field.NotSupported(path.Child("groupBy").Index(i), d, []mgmtv1alpha1.Dimension{
				mgmtv1alpha1.DimensionProject, mgmtv1alpha1.DimensionKeyID, mgmtv1alpha1.DimensionService,
				mgmtv1alpha1.DimensionModel, mgmtv1alpha1.DimensionEndpoint, mgmtv1alpha1.DimensionMember}))
			continue
		}
		req.GroupBy = append(req.GroupBy, dim)
	}
	if spec.StartTime.IsZero() {
		errs = append(errs, field.Required(path.Child("startTime"), "an RFC 3339 time, such as 2026-11-01T00:00:00Z"))
	}
	if spec.EndTime.IsZero() {
		errs = append(errs, field.Required(path.Child("endTime"), "an RFC 3339 time, after startTime"))
	}
	if len(errs) > 0 {
		return req, errs
	}
	if req.TimeZone == "" {
		req.TimeZone = r.organizationTimeZone(ctx)
	}
	if _, err := req.Validate(); err != nil {
		var invalid *usagereport.InvalidError
		if errors.As(err, &invalid) {
			return req, field.ErrorList{field.Invalid(specPath(invalid.Field), nil, invalid.Message)}
		}
		return req, field.ErrorList{field.InternalError(path, err)}
	}
	return req, nil
}

// organizationTimeZone is the zone the organization's billing cycle is cut
// in (currentCycle), or UTC.
func (r *usageReports) organizationTimeZone(ctx context.Context) string {
	if _, zone, err := currentCycle(ctx, r.cache, time.Now()); err == nil {
		return zone
	}
	return "UTC"
}

var dimensions = map[mgmtv1alpha1.Dimension]usage.Dimension{
	mgmtv1alpha1.DimensionProject: usage.ByProject, mgmtv1alpha1.DimensionKeyID: usage.ByKeyID,
	mgmtv1alpha1.DimensionService: usage.ByService, mgmtv1alpha1.DimensionModel: usage.ByModel,
	mgmtv1alpha1.DimensionEndpoint: usage.ByEndpoint, mgmtv1alpha1.DimensionMember: usagereport.ByMember,
}

// specPath turns a field of the usage server's request into the spec's:
// "filter.projects" is spec.projects, "groupBy[1]" spec.groupBy[1].
func specPath(requestField string) *field.Path {
	if requestField == "" {
		return field.NewPath("spec")
	}
	return field.NewPath("spec." + strings.TrimPrefix(requestField, "filter."))
}

func reportStatus(r *usagereport.Report, zone string) mgmtv1alpha1.UsageReportStatus {
	s := mgmtv1alpha1.UsageReportStatus{Currency: r.Currency, TimeZone: zone, Total: figures(r.Total), OtherGroups: int32(r.OtherGroups),
		Buckets: usageBuckets(r.Buckets), GroupCount: int32(r.GroupCount)}
	if len(r.GroupTotals) > 0 {
		s.GroupTotals = usageBuckets(r.GroupTotals)
	}
	if r.Previous != nil {
		p := figures(*r.Previous)
		s.Previous = &p
	}
	if r.SameDatesLastMonth != nil {
		l := figures(*r.SameDatesLastMonth)
		s.SameDatesLastMonth = &l
	}
	return s
}

func usageBuckets(in []usagereport.Bucket) []mgmtv1alpha1.UsageBucket {
	out := make([]mgmtv1alpha1.UsageBucket, 0, len(in))
	for _, b := range in {
		out = append(out, mgmtv1alpha1.UsageBucket{
			StartTime: metav1.NewTime(b.Start.UTC()), EndTime: metav1.NewTime(b.End.UTC()),
			Project: b.Group[usage.ByProject], KeyID: b.Group[usage.ByKeyID], Service: b.Group[usage.ByService],
			Model: b.Group[usage.ByModel], Endpoint: b.Group[usage.ByEndpoint], Member: b.Group[usagereport.ByMember],
			Others: b.Others, UsageFigures: figures(b.Figures)})
	}
	return out
}

func figures(f usagereport.Figures) mgmtv1alpha1.UsageFigures {
	return mgmtv1alpha1.UsageFigures{Calls: f.Calls, InputTokens: f.InputTokens, CachedInputTokens: f.CachedInputTokens,
		OutputTokens: f.OutputTokens,
		VideoSeconds: f.VideoSeconds, StorageByteHours: f.StorageByteHours, Cost: f.Cost, UnpricedCalls: f.UnpricedCalls}
}

// ConvertToTable shows a report's totals: what `kubectl create -f` of a
// report prints without -o.
func (r *usageReports) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Start", Type: text, Format: dateTime},
		{Name: "End", Type: text, Format: dateTime},
		{Name: "Buckets", Type: count},
		{Name: "Calls", Type: count},
		inputTokensColumn,
		outputTokensColumn,
		{Name: "Cost", Type: text},
		{Name: "Currency", Type: text},
	}}
	report, ok := obj.(*mgmtv1alpha1.UsageReport)
	if !ok {
		return nil, fmt.Errorf("not a UsageReport: %T", obj)
	}
	t := report.Status.Total
	table.Rows = []metav1.TableRow{{Object: runtime.RawExtension{Object: report}, Cells: []any{
		report.Spec.StartTime.UTC().Format(time.RFC3339), report.Spec.EndTime.UTC().Format(time.RFC3339),
		int64(len(report.Status.Buckets)), t.Calls, t.InputTokens, t.OutputTokens, t.Cost, report.Status.Currency}}}
	return table, nil
}
