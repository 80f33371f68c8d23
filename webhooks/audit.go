package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/identity"
)

// Auditor takes the audit entries of changes the hub's checks let through.
type Auditor interface {
	Record(auditlog.Entry)
}

// audited records, after a validator allowed it, every create, update and
// delete that is not a dry run. changes, when set, gives the old and new
// values of the fields that grant access.
type audited[T client.Object] struct {
	inner    admission.Validator[T]
	auditor  Auditor
	clock    clock.PassiveClock
	changes  func(old, new T) []auditlog.FieldChange
	activity *activity
}

func (a *audited[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	w, err := a.inner.ValidateCreate(ctx, obj)
	if err == nil {
		var none T
		a.record(ctx, "create", none, obj, a.diff(none, obj))
	}
	return w, err
}

func (a *audited[T]) ValidateUpdate(ctx context.Context, old, obj T) (admission.Warnings, error) {
	w, err := a.inner.ValidateUpdate(ctx, old, obj)
	if err == nil {
		a.record(ctx, "update", old, obj, a.diff(old, obj))
	}
	return w, err
}

func (a *audited[T]) ValidateDelete(ctx context.Context, obj T) (admission.Warnings, error) {
	w, err := a.inner.ValidateDelete(ctx, obj)
	if err == nil {
		a.record(ctx, "delete", obj, obj, a.diff(obj, *new(T)))
	}
	return w, err
}

// diff is the changes of the access fields; old is nil for a create, obj
// for a delete.
func (a *audited[T]) diff(old, obj T) []auditlog.FieldChange {
	if a.changes == nil {
		return nil
	}
	return a.changes(old, obj)
}

// record takes an entry. old is the object before the change (absent for a
// create), obj after it (the deleted object for a delete).
func (a *audited[T]) record(ctx context.Context, action string, old, obj T, changes []auditlog.FieldChange) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil || (req.DryRun != nil && *req.DryRun) {
		return
	}
	a.activity.seen(req.UserInfo.Username, identity.MultiFactor(req.UserInfo.Extra))
	if a.auditor == nil {
		return
	}
	// A create may not have its name yet (generateName): the object's
	// name, or its prefix, stands in.
	name := req.Name
	if name == "" {
		name = obj.GetName()
	}
	if name == "" {
		name = obj.GetGenerateName() + "*"
	}
	a.auditor.Record(auditlog.Entry{
		ID: entryID(req, old, obj), Time: a.clock.Now().UTC(), Actor: req.UserInfo.Username, Groups: req.UserInfo.Groups,
		Action: action, Kind: req.Kind.Kind, Namespace: req.Namespace, Name: name, UID: string(obj.GetUID()),
		Changes: changes,
	})
}

// entryID identifies a change, so that it is kept once although the API
// server may ask the webhook more than once: it retries an update that met a
// concurrent write (a controller's status update) with a new admission
// request. The ID is made of who did what to which object (by UID, so a
// re-created object is another), the generation the change started from,
// and the content (spec, labels and annotations) before and after it. A
// retry repeats all of them, and a spec change moves the generation on. What
// is kept once is the same metadata-only change (labels, annotations) made
// twice by one person from the same generation: the generation does not
// count such changes, and the resource version, which does, moves on in a
// retry too.
func entryID[T client.Object](req admission.Request, old, obj T) string {
	h := sha256.New()
	var fromGeneration int64
	if any(old) != nil && !reflect.ValueOf(old).IsNil() {
		fromGeneration = old.GetGeneration()
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00", req.UserInfo.Username, req.Operation, req.Kind.Kind,
		req.Namespace, req.Name, obj.GetUID(), fromGeneration)
	if fromGeneration != 0 {
		h.Write(content(old))
		h.Write([]byte{0})
	}
	h.Write(content(obj))
	return hex.EncodeToString(h.Sum(nil))
}

// content is an object's spec, labels and annotations, as JSON.
func content(obj client.Object) []byte {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		m["metadata"] = map[string]any{"labels": md["labels"], "annotations": md["annotations"]}
	}
	out, _ := json.Marshal(m) // map keys come out sorted
	return out
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

// activity keeps Members' lastActiveAt and mfaEnrolled: a member who changes
// a hub resource is active, and one whose sign-in used a second factor has
// one enrolled. It writes at most once a minute per member (sooner when it
// first sees a second factor), in the background, so that admission never
// waits on it.
type activity struct {
	team
	Client client.Client
	Clock  clock.PassiveClock

	mu   sync.Mutex
	last map[string]seenAt
}

// seenAt is when activity last wrote a member's status, and whether that
// write recorded a second factor.
type seenAt struct {
	time        time.Time
	multiFactor bool
}

// seen notes that user made a change now, signed in with a second factor or
// not.
func (a *activity) seen(user string, multiFactor bool) {
	if a == nil || user == "" {
		return
	}
	now := a.Clock.Now()
	a.mu.Lock()
	if a.last == nil {
		a.last = map[string]seenAt{}
	}
	last, ok := a.last[user]
	if ok && now.Sub(last.time) < time.Minute && (last.multiFactor || !multiFactor) {
		a.mu.Unlock()
		return
	}
	a.last[user] = seenAt{time: now, multiFactor: multiFactor || last.multiFactor}
	a.mu.Unlock()
	go a.write(user, now, multiFactor)
}

// write stamps the member's lastActiveAt and, after a sign-in with a second
// factor, sets mfaEnrolled. mfaEnrolled is never cleared here: a sign-in
// without a second factor does not mean the member has none (providers ask
// for it only now and then).
func (a *activity) write(user string, now time.Time, multiFactor bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	org := &hubv1.Organization{}
	if err := a.Reader.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return
	}
	members := &hubv1.MemberList{}
	if err := a.Reader.List(ctx, members); err != nil {
		return
	}
	for i := range members.Items {
		m := &members.Items[i]
		if org.Spec.Security.UsernamePrefix+m.Spec.Email != user {
			continue
		}
		before := m.DeepCopy()
		m.Status.LastActiveAt = &metav1.Time{Time: now.Truncate(time.Second)}
		m.Status.MFAEnrolled = m.Status.MFAEnrolled || multiFactor
		if err := a.Client.Status().Patch(ctx, m, client.MergeFrom(before)); err != nil {
			// Let the member's next change write again, not a minute later.
			a.mu.Lock()
			delete(a.last, user)
			a.mu.Unlock()
		}
	}
}
