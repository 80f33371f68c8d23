package apiserver

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/usage"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// projectUsages serves ProjectUsages: read-only, one per Project in the
// cache, with figures asked from the usage server (one report grouped by
// project for a list).
type projectUsages struct {
	usage *UsageClient
	cache client.Reader
	now   func() time.Time
}

var (
	_ rest.Getter               = (*projectUsages)(nil)
	_ rest.Lister               = (*projectUsages)(nil)
	_ rest.Scoper               = (*projectUsages)(nil)
	_ rest.SingularNameProvider = (*projectUsages)(nil)
)

func (r *projectUsages) New() runtime.Object     { return &mgmtv1alpha1.ProjectUsage{} }
func (r *projectUsages) NewList() runtime.Object { return &mgmtv1alpha1.ProjectUsageList{} }
func (r *projectUsages) Destroy()                {}
func (r *projectUsages) NamespaceScoped() bool   { return false }
func (r *projectUsages) GetSingularName() string { return "projectusage" }

// Get answers one project's usage; a project that does not exist is not
// found.
func (r *projectUsages) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	project := &hubv1.Project{}
	if err := r.cache.Get(ctx, client.ObjectKey{Name: name}, project); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(mgmtv1alpha1.Resource("projectusages"), name)
		}
		return nil, err
	}
	list, err := r.usages(ctx, []hubv1.Project{*project})
	if err != nil {
		return nil, err
	}
	return &list.Items[0], nil
}

// List answers every project's usage, in name order.
func (r *projectUsages) List(ctx context.Context, _ *metainternalversion.ListOptions) (runtime.Object, error) {
	projects := &hubv1.ProjectList{}
	if err := r.cache.List(ctx, projects); err != nil {
		return nil, err
	}
	return r.usages(ctx, projects.Items)
}

// usages asks the usage server for the cycle's figures of projects.
func (r *projectUsages) usages(ctx context.Context, projects []hubv1.Project) (*mgmtv1alpha1.ProjectUsageList, error) {
	cycle, zone, err := currentCycle(ctx, r.cache, r.now())
	if err != nil {
		return nil, err
	}
	req := usagereport.Request{From: cycle.Start, To: cycle.End, TimeZone: zone, GroupBy: []usage.Dimension{usage.ByProject}}
	if len(projects) == 1 {
		req.Filter.Projects = []string{projects[0].Name}
	}
	report, err := r.usage.Report(ctx, req)
	if err != nil {
		return nil, usageUnavailable(ctx, err)
	}
	byProject := map[string]mgmtv1alpha1.UsageFigures{}
	for _, b := range report.Buckets {
		byProject[b.Group[usage.ByProject]] = figures(b.Figures)
	}
	list := &mgmtv1alpha1.ProjectUsageList{Items: make([]mgmtv1alpha1.ProjectUsage, 0, len(projects))}
	for _, p := range projects {
		f, ok := byProject[p.Name]
		if !ok {
			f = mgmtv1alpha1.UsageFigures{Cost: "0"}
		}
		list.Items = append(list.Items, mgmtv1alpha1.ProjectUsage{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, UID: p.UID, CreationTimestamp: p.CreationTimestamp},
			CycleStart: metav1.NewTime(cycle.Start.UTC()), CycleEnd: metav1.NewTime(cycle.End.UTC()),
			Currency: report.Currency, Usage: f})
	}
	return list, nil
}

// ConvertToTable shows each project's figures: what `kubectl get
// projectusages` prints.
func (r *projectUsages) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: nameHeader, Type: text, Format: nameFormat, Description: "the project"},
		{Name: "Calls", Type: count},
		inputTokensColumn,
		outputTokensColumn,
		{Name: "Spend", Type: text, Description: "cost in the cycle so far"},
		{Name: "Currency", Type: text},
		{Name: "Cycle Ends", Type: text, Format: dateTime},
	}}
	var items []mgmtv1alpha1.ProjectUsage
	switch o := obj.(type) {
	case *mgmtv1alpha1.ProjectUsage:
		items = []mgmtv1alpha1.ProjectUsage{*o}
	case *mgmtv1alpha1.ProjectUsageList:
		items = o.Items
	default:
		return nil, fmt.Errorf("not a ProjectUsage: %T", obj)
	}
	for i := range items {
		p := &items[i]
		table.Rows = append(table.Rows, metav1.TableRow{Object: runtime.RawExtension{Object: p}, Cells: []any{
			p.Name, p.Usage.Calls, p.Usage.InputTokens, p.Usage.OutputTokens, p.Usage.Cost, p.Currency,
			p.CycleEnd.UTC().Format(time.RFC3339)}})
	}
	return table, nil
}
