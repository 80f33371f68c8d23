package apiserver

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// members serves the organization's Members in the management group: the
// same objects as members.hub.minimax.io, read and written in
// kube-apiserver as the caller (impersonated), so that tools with only a
// hub key, which cannot reach kube-apiserver, can invite a member (create),
// change a role (update or patch spec.role), disable one (spec.disabled)
// and remove one (delete), under the caller's RBAC and the hub's admission
// rules (no one raises anyone above their own role, the last Owner stays).
type members struct {
	actAs *actAs
}

var (
	_ rest.Getter               = (*members)(nil)
	_ rest.Lister               = (*members)(nil)
	_ rest.Creater              = (*members)(nil) //nolint:misspell // the interface's name
	_ rest.Updater              = (*members)(nil)
	_ rest.GracefulDeleter      = (*members)(nil)
	_ rest.Scoper               = (*members)(nil)
	_ rest.SingularNameProvider = (*members)(nil)
	_ rest.TableConvertor       = (*members)(nil)
)

func (r *members) New() runtime.Object     { return &hubv1.Member{} }
func (r *members) NewList() runtime.Object { return &hubv1.MemberList{} }
func (r *members) Destroy()                {}
func (r *members) NamespaceScoped() bool   { return false }
func (r *members) GetSingularName() string { return "member" }

// Get reads one Member as the caller.
func (r *members) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, err
	}
	m := &hubv1.Member{}
	if err := as.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
		return nil, asCaller(err, "get", "members")
	}
	return m, nil
}

// List reads the Members as the caller, a page at a time when asked
// (limit and continue go to kube-apiserver as they came).
func (r *members) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, err
	}
	opts := &client.ListOptions{}
	if options != nil {
		opts.LabelSelector, opts.Limit, opts.Continue = options.LabelSelector, options.Limit, options.Continue
		if options.FieldSelector != nil && !options.FieldSelector.Empty() {
			opts.FieldSelector = options.FieldSelector
		}
	}
	list := &hubv1.MemberList{}
	if err := as.List(ctx, list, opts); err != nil {
		return nil, asCaller(err, "list", "members")
	}
	return list, nil
}

// Create invites a member: the Member is created as the caller, and the
// hub's controller sends the invitation.
func (r *members) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc,
	_ *metav1.CreateOptions) (runtime.Object, error) {
	m, ok := obj.(*hubv1.Member)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Member: %T", obj))
	}
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, err
	}
	m = forKubeAPIServer(m)
	if err := as.Create(ctx, m); err != nil {
		return nil, asCaller(err, "create", "members")
	}
	return m, nil
}

// Update changes a Member (its role, groups, disabled) as the caller; a
// patch arrives here applied to the Member as read. The write carries the
// resource version read, so a concurrent change makes it fail (409), never
// lost.
func (r *members) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, _ rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, _ bool, _ *metav1.UpdateOptions) (runtime.Object, bool, error) {
	current, err := r.Get(ctx, name, nil)
	if err != nil {
		return nil, false, err
	}
	updated, err := objInfo.UpdatedObject(ctx, current)
	if err != nil {
		return nil, false, err
	}
	m, ok := updated.(*hubv1.Member)
	if !ok {
		return nil, false, apierrors.NewBadRequest(fmt.Sprintf("not a Member: %T", updated))
	}
	if updateValidation != nil {
		if err := updateValidation(ctx, m, current); err != nil {
			return nil, false, err
		}
	}
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, false, err
	}
	m = forKubeAPIServer(m)
	if err := as.Update(ctx, m); err != nil {
		return nil, false, asCaller(err, "update", "members")
	}
	return m, false, nil
}

// Delete removes a Member as the caller.
func (r *members) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc,
	options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	current, err := r.Get(ctx, name, nil)
	if err != nil {
		return nil, false, err
	}
	if deleteValidation != nil {
		if err := deleteValidation(ctx, current); err != nil {
			return nil, false, err
		}
	}
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, false, err
	}
	opts := &client.DeleteOptions{}
	if options != nil {
		opts.Raw = options
	}
	if err := as.Delete(ctx, current.(*hubv1.Member), opts); err != nil {
		return nil, false, asCaller(err, "delete", "members")
	}
	return current, true, nil
}

// forKubeAPIServer is m as kube-apiserver takes it: its kind is the CRD's,
// whatever group the caller named.
func forKubeAPIServer(m *hubv1.Member) *hubv1.Member {
	m = m.DeepCopy()
	m.SetGroupVersionKind(hubv1.GroupVersion.WithKind("Member"))
	return m
}

// ConvertToTable prints what kubectl get members prints of the CRD.
func (r *members) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: nameHeader, Type: text, Format: nameFormat}, {Name: "Email", Type: text}, {Name: "Role", Type: text},
		{Name: "Phase", Type: text}, {Name: "Disabled", Type: "boolean"}, {Name: "Age", Type: text},
	}}
	var items []hubv1.Member
	switch o := obj.(type) {
	case *hubv1.Member:
		items = []hubv1.Member{*o}
	case *hubv1.MemberList:
		items = o.Items
		table.ResourceVersion, table.Continue = o.ResourceVersion, o.Continue
	default:
		return nil, fmt.Errorf("not a Member: %T", obj)
	}
	for i := range items {
		m := &items[i]
		table.Rows = append(table.Rows, metav1.TableRow{Object: runtime.RawExtension{Object: m},
			Cells: []any{m.Name, m.Spec.Email, string(m.Spec.Role), string(m.Status.Phase), m.Spec.Disabled,
				duration.HumanDuration(time.Since(m.CreationTimestamp.Time))}})
	}
	return table, nil
}
