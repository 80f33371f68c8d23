package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/registry/rest"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
)

// maxHistoryLimit bounds a page of audit events or alerts.
const maxHistoryLimit = 1000

// historyQuery turns list options into the usage server's parameters for
// the audit log or the alert history: startTime and endTime (RFC 3339)
// become from and to, the other field selectors the parameters params
// names, and limit and continue go as they came. kind names the kind for
// refusals.
func historyQuery(opts *metainternalversion.ListOptions, kind string, fields []string, params map[string]string) (url.Values, error) {
	q := url.Values{}
	if opts == nil {
		return q, nil
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.FormatInt(min(opts.Limit, maxHistoryLimit), 10))
	}
	if opts.Continue != "" {
		q.Set("continue", opts.Continue)
	}
	if opts.FieldSelector == nil {
		return q, nil
	}
	for _, f := range opts.FieldSelector.Requirements() {
		if f.Operator != selection.Equals && f.Operator != selection.DoubleEquals {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("field selector %s: only = is supported for %ss", f.Field, kind))
		}
		switch f.Field {
		case mgmtv1alpha1.FieldStartTime, mgmtv1alpha1.FieldEndTime:
			if _, err := time.Parse(time.RFC3339, f.Value); err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field selector %s: %q is not an RFC 3339 time, such as 2026-11-27T10:00:00Z",
					f.Field, f.Value))
			}
			q.Set(map[string]string{mgmtv1alpha1.FieldStartTime: "from", mgmtv1alpha1.FieldEndTime: "to"}[f.Field], f.Value)
		default:
			param, ok := params[f.Field]
			if !ok {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field selector %s is not supported for %ss; use %s", f.Field, kind,
					strings.Join(fields, ", ")))
			}
			q.Set(param, f.Value)
		}
	}
	return q, nil
}

// historyError is the answer when the usage server refused or failed a
// page of history.
func historyError(ctx context.Context, err error) error {
	var refused *usageServerError
	if errors.As(err, &refused) && refused.status == http.StatusBadRequest {
		return apierrors.NewBadRequest(refused.message)
	}
	return usageUnavailable(ctx, err)
}

// auditParams are the usage server's parameters for the audit events'
// field selectors.
var auditParams = map[string]string{"actor": "actor", "object.kind": "kind", "object.namespace": "namespace", "object.name": "name"}

// alertParams are the usage server's parameters for the alerts' field
// selectors.
var alertParams = map[string]string{mgmtv1alpha1.FieldProject: "project", "type": "kind"}

// auditEvents serves AuditEvents: the hub's audit log, listed page by page
// from the usage server.
type auditEvents struct {
	usage *UsageClient
}

var (
	_ rest.Lister               = (*auditEvents)(nil)
	_ rest.Scoper               = (*auditEvents)(nil)
	_ rest.SingularNameProvider = (*auditEvents)(nil)
)

func (r *auditEvents) New() runtime.Object     { return &mgmtv1alpha1.AuditEvent{} }
func (r *auditEvents) NewList() runtime.Object { return &mgmtv1alpha1.AuditEventList{} }
func (r *auditEvents) Destroy()                {}
func (r *auditEvents) NamespaceScoped() bool   { return false }
func (r *auditEvents) GetSingularName() string { return "auditevent" }

// List answers one page of the audit log, oldest first.
func (r *auditEvents) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	q, err := historyQuery(opts, "AuditEvent", mgmtv1alpha1.AuditEventFields,
		auditParams)
	if err != nil {
		return nil, err
	}
	page, err := r.usage.AuditEvents(ctx, q)
	if err != nil {
		return nil, historyError(ctx, err)
	}
	list := &mgmtv1alpha1.AuditEventList{Items: make([]mgmtv1alpha1.AuditEvent, 0, len(page.Entries))}
	list.Continue = page.Continue
	for _, e := range page.Entries {
		changes := make([]mgmtv1alpha1.FieldChange, 0, len(e.Changes))
		for _, c := range e.Changes {
			changes = append(changes, mgmtv1alpha1.FieldChange{Field: c.Field, Old: c.Old, New: c.New})
		}
		list.Items = append(list.Items, mgmtv1alpha1.AuditEvent{ObjectMeta: metav1.ObjectMeta{Name: e.ID},
			Time: metav1.NewTime(e.Time), Actor: e.Actor, Groups: e.Groups, Via: e.Via, KeyID: e.KeyID, Action: e.Action,
			Object: mgmtv1alpha1.AuditObject{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, UID: e.UID,
				ResourceVersion: e.ResourceVersion}, Changes: changes})
	}
	return list, nil
}

// ConvertToTable shows each change: what `kubectl get auditevents` prints.
func (r *auditEvents) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		timeColumn, {Name: "Actor", Type: text}, {Name: "Action", Type: text},
		{Name: "Kind", Type: text}, {Name: "Namespace", Type: text}, {Name: "Object", Type: text},
		{Name: "Via", Type: text}, {Name: "Key ID", Type: text}, wideNameColumn,
	}}
	list, ok := obj.(*mgmtv1alpha1.AuditEventList)
	if !ok {
		return nil, fmt.Errorf("not an AuditEventList: %T", obj)
	}
	table.Continue = list.Continue
	for i := range list.Items {
		e := &list.Items[i]
		table.Rows = append(table.Rows, metav1.TableRow{Object: runtime.RawExtension{Object: e}, Cells: []any{
			e.Time.UTC().Format(time.RFC3339), e.Actor, e.Action, e.Object.Kind, e.Object.Namespace, e.Object.Name, e.Via, e.KeyID, e.Name}})
	}
	return table, nil
}

// alerts serves Alerts: the alert history, listed page by page from the
// usage server.
type alerts struct {
	usage *UsageClient
}

var (
	_ rest.Lister               = (*alerts)(nil)
	_ rest.Scoper               = (*alerts)(nil)
	_ rest.SingularNameProvider = (*alerts)(nil)
)

func (r *alerts) New() runtime.Object     { return &mgmtv1alpha1.Alert{} }
func (r *alerts) NewList() runtime.Object { return &mgmtv1alpha1.AlertList{} }
func (r *alerts) Destroy()                {}
func (r *alerts) NamespaceScoped() bool   { return false }
func (r *alerts) GetSingularName() string { return "alert" }

// List answers one page of the alert history, oldest first.
func (r *alerts) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	q, err := historyQuery(opts, "Alert", mgmtv1alpha1.AlertFields, alertParams)
	if err != nil {
		return nil, err
	}
	page, err := r.usage.Alerts(ctx, q)
	if err != nil {
		return nil, historyError(ctx, err)
	}
	list := &mgmtv1alpha1.AlertList{Items: make([]mgmtv1alpha1.Alert, 0, len(page.Alerts))}
	list.Continue = page.Continue
	for _, a := range page.Alerts {
		list.Items = append(list.Items, alertOf(a))
	}
	return list, nil
}

func alertOf(a alertlog.Alert) mgmtv1alpha1.Alert {
	out := mgmtv1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Name: a.ID}, Time: metav1.NewTime(a.Time), Type: string(a.Kind),
		Source: mgmtv1alpha1.AlertSource{Namespace: a.Namespace, Name: a.Name, UID: a.SourceUID}, Project: a.Project,
		Threshold: a.Threshold}
	if !a.CycleStart.IsZero() {
		cycle := metav1.NewTime(a.CycleStart)
		out.CycleStart = &cycle
	}
	for _, d := range a.Deliveries {
		out.Deliveries = append(out.Deliveries, mgmtv1alpha1.AlertDelivery{Channel: d.Channel, State: string(d.State),
			Attempts: int32(min(d.Attempts, 1<<30)), LastError: d.LastError, Updated: metav1.NewTime(d.Updated)})
	}
	return out
}

// ConvertToTable shows each alert: what `kubectl get alerts` prints.
func (r *alerts) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		timeColumn, {Name: "Type", Type: text}, {Name: "Project", Type: text},
		{Name: "Source", Type: text}, {Name: "Threshold", Type: count}, {Name: "Delivered", Type: text},
		wideNameColumn,
	}}
	list, ok := obj.(*mgmtv1alpha1.AlertList)
	if !ok {
		return nil, fmt.Errorf("not an AlertList: %T", obj)
	}
	table.Continue = list.Continue
	for i := range list.Items {
		a := &list.Items[i]
		delivered := 0
		for _, d := range a.Deliveries {
			if d.State == string(alertlog.DeliveryDelivered) {
				delivered++
			}
		}
		source := a.Source.Name
		if a.Source.Namespace != "" {
			source = a.Source.Namespace + "/" + source
		}
		table.Rows = append(table.Rows, metav1.TableRow{Object: runtime.RawExtension{Object: a}, Cells: []any{
			a.Time.UTC().Format(time.RFC3339), a.Type, a.Project, source, int64(a.Threshold),
			fmt.Sprintf("%d/%d", delivered, len(a.Deliveries)), a.Name}})
	}
	return table, nil
}
