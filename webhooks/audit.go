package webhooks

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/audit"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/identity"
)

// Stamper takes what admission saw of each change it let through; the
// change is recorded in the audit log once the API server stores it
// (audit.Committer). Admission itself writes nothing.
type Stamper interface {
	Stamp(audit.Stamp)
	// Accepting is false while audit entries could not be kept (the
	// usage server has been away long enough to fill the audit spool):
	// changes are then refused, so that none goes unaudited.
	Accepting() bool
}

// audited stamps, after a validator allowed it, every create, update and
// delete that is not a dry run. changes, when set, gives the old and new
// values of the fields that grant access.
type audited[T client.Object] struct {
	inner   admission.Validator[T]
	stamper Stamper
	clock   clock.PassiveClock
	changes func(old, new T) []auditlog.FieldChange
	// hubNamespace is where the hub's own ServiceAccounts are, whose
	// changes always pass (a finalizer removed by the manager, say).
	hubNamespace string
}

func (a *audited[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	if err := a.unauditable(ctx, false); err != nil {
		return nil, err
	}
	w, err := a.inner.ValidateCreate(ctx, obj)
	if err == nil {
		var none T
		a.stamp(ctx, auditlog.ActionCreate, none, obj, a.diff(none, obj))
	}
	return w, err
}

func (a *audited[T]) ValidateUpdate(ctx context.Context, old, obj T) (admission.Warnings, error) {
	if err := a.unauditable(ctx, withdraws(old, obj)); err != nil {
		return nil, err
	}
	w, err := a.inner.ValidateUpdate(ctx, old, obj)
	if err == nil {
		a.stamp(ctx, auditlog.ActionUpdate, old, obj, a.diff(old, obj))
	}
	return w, err
}

func (a *audited[T]) ValidateDelete(ctx context.Context, obj T) (admission.Warnings, error) {
	if err := a.unauditable(ctx, true); err != nil {
		return nil, err
	}
	w, err := a.inner.ValidateDelete(ctx, obj)
	if err == nil {
		a.stamp(ctx, auditlog.ActionDelete, obj, *new(T), a.diff(obj, *new(T)))
	}
	return w, err
}

// unauditable refuses a change that could not be audited: the audit
// spool is full. What must never wait for the usage server passes all the
// same, its entry spilled into the spool's headroom: a change that
// withdraws access (a delete, a key revoked, a member disabled), the
// changes of cluster administrators (the way back in) and those of the
// hub's own ServiceAccounts (the manager's finalizers). Dry runs change
// nothing and pass.
func (a *audited[T]) unauditable(ctx context.Context, withdrawing bool) error {
	if a.stamper == nil || withdrawing || a.stamper.Accepting() {
		return nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err == nil && ((req.DryRun != nil && *req.DryRun) || slices.Contains(req.UserInfo.Groups, masters) ||
		(a.hubNamespace != "" && strings.HasPrefix(req.UserInfo.Username, "system:serviceaccount:"+a.hubNamespace+":"))) {
		return nil
	}
	return apierrors.NewServiceUnavailable("the hub cannot record this change in its audit log right now (the usage " +
		"server has been unreachable long enough to fill the audit spool), so it refuses changes; retry later")
}

// withdraws tells whether a change only takes access away: a key
// revoked, a member disabled.
func withdraws(old, obj client.Object) bool {
	switch o := obj.(type) {
	case *hubv1.APIKey:
		before, ok := old.(*hubv1.APIKey)
		return ok && o.Spec.Revoked && !before.Spec.Revoked && sameButRevoked(before, o)
	case *hubv1.Member:
		before, ok := old.(*hubv1.Member)
		return ok && o.Spec.Disabled && !before.Spec.Disabled
	}
	return false
}

// diff is the changes of the access fields; old is nil for a create, obj
// for a delete.
func (a *audited[T]) diff(old, obj T) []auditlog.FieldChange {
	if a.changes == nil {
		return nil
	}
	return a.changes(old, obj)
}

// stamp hands the stamper what admission knows of the change: old is the
// object before it (absent for a create), obj after it (absent for a
// delete).
func (a *audited[T]) stamp(ctx context.Context, action string, old, obj T, changes []auditlog.FieldChange) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil || (req.DryRun != nil && *req.DryRun) || a.stamper == nil {
		return
	}
	subject := obj
	if isAbsent(obj) {
		subject = old
	}
	// A create may not have its name yet (generateName): the object's
	// name, or its prefix, stands in.
	name := req.Name
	if name == "" {
		name = subject.GetName()
	}
	if name == "" {
		name = subject.GetGenerateName() + "*"
	}
	s := audit.Stamp{
		Entry: auditlog.Entry{
			Time: a.clock.Now().UTC(), Actor: req.UserInfo.Username, Groups: req.UserInfo.Groups,
			Via: firstExtra(req.UserInfo.Extra, identity.ViaExtra), KeyID: firstExtra(req.UserInfo.Extra, identity.KeyIDExtra),
			Action: action, Kind: req.Kind.Kind, Namespace: req.Namespace, Name: name, UID: string(subject.GetUID()),
			Changes: changes,
		},
		MultiFactor: identity.MultiFactor(req.UserInfo.Extra),
	}
	if !isAbsent(old) {
		s.Before = audit.Digest(old)
	}
	if !isAbsent(obj) {
		s.After = audit.Digest(obj)
	}
	a.stamper.Stamp(s)
}

// isAbsent tells a nil object (before a create, after a delete).
func isAbsent[T client.Object](obj T) bool {
	return any(obj) == nil || reflect.ValueOf(obj).IsNil()
}

// change appends a field's change when its value differs.
func change(out []auditlog.FieldChange, field, old, new string) []auditlog.FieldChange {
	if old == new {
		return out
	}
	return append(out, auditlog.FieldChange{Field: field, Old: old, New: new})
}

// orEmpty stands an empty object in for an absent one (before a create,
// after a delete), whose fields all read as empty.
func orEmpty[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

func memberChanges(old, m *hubv1.Member) []auditlog.FieldChange {
	old, m = orEmpty(old), orEmpty(m)
	var out []auditlog.FieldChange
	out = change(out, "spec.role", string(old.Spec.Role), string(m.Spec.Role))
	out = change(out, "spec.groups", strings.Join(sorted(old.Spec.Groups), ","), strings.Join(sorted(m.Spec.Groups), ","))
	out = change(out, "spec.disabled", boolText(old, old.Spec.Disabled), boolText(m, m.Spec.Disabled))
	return out
}

func groupChanges(old, g *hubv1.Group) []auditlog.FieldChange {
	old, g = orEmpty(old), orEmpty(g)
	text := func(access []hubv1.ProjectRole) string {
		parts := make([]string, 0, len(access))
		for _, a := range access {
			parts = append(parts, a.Project+"="+string(a.Role))
		}
		return strings.Join(sorted(parts), ",")
	}
	return change(nil, "spec.projectAccess", text(old.Spec.ProjectAccess), text(g.Spec.ProjectAccess))
}

func projectChanges(old, p *hubv1.Project) []auditlog.FieldChange {
	old, p = orEmpty(old), orEmpty(p)
	text := func(access []hubv1.ProjectAccess) string {
		parts := make([]string, 0, len(access))
		for _, a := range access {
			parts = append(parts, fmt.Sprintf("%s/%s=%s", a.Kind, a.Name, a.Role))
		}
		return strings.Join(sorted(parts), ",")
	}
	return change(nil, "spec.access", text(old.Spec.Access), text(p.Spec.Access))
}

func organizationChanges(old, o *hubv1.Organization) []auditlog.FieldChange {
	old, o = orEmpty(old), orEmpty(o)
	out := change(nil, "spec.plan", string(old.Spec.Plan), string(o.Spec.Plan))
	return change(out, "spec.security.usernamePrefix", old.Spec.Security.UsernamePrefix, o.Spec.Security.UsernamePrefix)
}

// boolText is a bool field's value, or nothing for an object that is not
// there (before a create, after a delete).
func boolText(obj client.Object, v bool) string {
	if obj.GetName() == "" {
		return ""
	}
	return strconv.FormatBool(v)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// firstExtra is the first value of the user's extra key, or "".
func firstExtra(extra map[string]authenticationv1.ExtraValue, key string) string {
	if v := extra[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
