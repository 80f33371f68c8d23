package controllers

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/statusapply"
)

// activityGranularity is how fresh lastActiveAt is kept: a member active
// all day costs a status write a minute, not one a change.
const activityGranularity = time.Minute

// MemberActivityReconciler keeps Members' lastActiveAt and mfaEnrolled,
// the two status fields it owns: a member who made a change that the API
// server stored is active, and one whose sign-in for it used a second
// factor has one enrolled. It hears of changes from the audit log's
// committer (Seen), on every replica, since each replica sees the changes
// it admitted; it writes lastActiveAt at most once a minute per member.
// mfaEnrolled is never cleared: a sign-in without a second factor does not
// mean the member has none (providers ask for it only now and then).
type MemberActivityReconciler struct {
	client.Client
	Clock clock.PassiveClock

	mu     sync.Mutex
	seen   map[string]seenAt // by username
	events chan event.GenericEvent
}

// seenAt is a user's latest stored change, and whether any change since
// the last write was made with a second factor.
type seenAt struct {
	time        time.Time
	multiFactor bool
}

// NewMemberActivityReconciler returns a reconciler to register with
// SetupWithManager and to hand to the audit log's committer.
func NewMemberActivityReconciler(c client.Client, clk clock.PassiveClock) *MemberActivityReconciler {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &MemberActivityReconciler{Client: c, Clock: clk, seen: map[string]seenAt{}, events: make(chan event.GenericEvent, 1024)}
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=members,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=members/status,verbs=get;patch

// Seen notes that user made a stored change now, signed in with a second
// factor or not, and queues the user's members. It never blocks: when the
// queue is full the note waits for the user's next change.
func (r *MemberActivityReconciler) Seen(user string, multiFactor bool) {
	if user == "" {
		return
	}
	r.mu.Lock()
	prev := r.seen[user]
	r.seen[user] = seenAt{time: r.Clock.Now(), multiFactor: multiFactor || prev.multiFactor}
	r.mu.Unlock()
	// The user rides in the name of a stand-in object; usernameToMembers
	// turns it into the members with that username.
	select {
	case r.events <- event.GenericEvent{Object: &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: user}}}:
	default:
	}
}

// Reconcile writes a member's activity when it is newer than its status by
// a minute, or brings the first second factor.
func (r *MemberActivityReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &hubv1.Member{}
	if err := r.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	username, err := r.username(ctx, m)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	seen, ok := r.seen[username]
	r.mu.Unlock()
	if !ok {
		return ctrl.Result{}, nil
	}
	s := &m.Status
	stale := s.LastActiveAt == nil || seen.time.Sub(s.LastActiveAt.Time) >= activityGranularity
	if !stale && (s.MFAEnrolled || !seen.multiFactor) {
		return ctrl.Result{}, nil
	}
	if stale {
		s.LastActiveAt = &metav1.Time{Time: seen.time.Truncate(time.Second)}
	}
	s.MFAEnrolled = s.MFAEnrolled || seen.multiFactor
	fields, err := statusapply.Select(s, "lastActiveAt", "mfaEnrolled")
	if err != nil {
		return ctrl.Result{}, err
	}
	// Locked on the version read: another replica may have written a
	// later time, which this one must not move back.
	if err := statusapply.ApplyIfUnchanged(ctx, r.Client, m, fields, statusapply.OwnerMemberActivity); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.forget(username, seen)
	return ctrl.Result{}, nil
}

// forget drops what was seen of a user once written, unless more came in
// meanwhile.
func (r *MemberActivityReconciler) forget(username string, written seenAt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[username] == written {
		delete(r.seen, username)
	}
}

// username is the Kubernetes username of m: the Organization's username
// prefix and the member's email (as the access controller binds it).
func (r *MemberActivityReconciler) username(ctx context.Context, m *hubv1.Member) (string, error) {
	prefix, err := r.usernamePrefix(ctx)
	return prefix + m.Spec.Email, err
}

func (r *MemberActivityReconciler) usernamePrefix(ctx context.Context) (string, error) {
	org := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return "", err
	}
	return org.Spec.Security.UsernamePrefix, nil
}

// usernameToMembers maps a stand-in object named after a username to the
// members with that username; a user who is no member is forgotten.
func (r *MemberActivityReconciler) usernameToMembers(ctx context.Context, obj client.Object) []reconcile.Request {
	user := obj.GetName()
	prefix, err := r.usernamePrefix(ctx)
	members := &hubv1.MemberList{}
	if err != nil || r.List(ctx, members) != nil {
		return nil
	}
	var out []reconcile.Request
	for _, m := range members.Items {
		if prefix+m.Spec.Email == user {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: m.Name}})
		}
	}
	if len(out) == 0 {
		r.mu.Lock()
		delete(r.seen, user)
		r.mu.Unlock()
	}
	return out
}

// SetupWithManager registers the reconciler. It runs on every replica,
// without leader election, since each replica hears of the changes it
// admitted.
func (r *MemberActivityReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("member-activity").
		WatchesRawSource(source.Channel(r.events, handler.EnqueueRequestsFromMapFunc(r.usernameToMembers))).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(quietConflicts{r})
}
