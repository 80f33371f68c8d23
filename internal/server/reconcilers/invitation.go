package reconcilers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/notify"
)

// InvitationReconciler sends Members their invitation emails: creating a
// Member (or changing its spec.resendInvitation) sends an email with a link
// that carries a new token. Package invitations holds the tokens, the links,
// the status fields the invitation owns and the handler that takes the
// acceptance. It runs on the elected replica of the server role.
//
// It sets the InvitationSent condition on a Member: True once the email is
// out, False with InvitationFailed while it cannot be sent.
type InvitationReconciler struct {
	client.Client
	Sender *notify.Sender
	Clock  clock.PassiveClock
	// PublicURL is the base of the links in invitations (the dashboard, or
	// the server's public address). Without it no invitation is sent.
	PublicURL string
	// TTL is how long a link works; default 7 days.
	TTL time.Duration
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=members,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=members/status,verbs=get;patch

// Reconcile sends a Member its invitation when it has none for the current
// spec.resendInvitation.
func (r *InvitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &hubv1.Member{}
	if err := r.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &m.Status
	sent := s.InvitationSentAt != nil && s.InvitationDigest != "" && s.InvitationFor == m.Spec.ResendInvitation
	provisioned := m.Annotations[hubv1.ProvisionedByAnnotation] == hubv1.ProvisionedBySSO // signing in accepts it
	if m.Spec.Disabled || s.AcceptedAt != nil || sent || provisioned || !m.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if r.PublicURL == "" {
		return ctrl.Result{}, r.setSent(ctx, m, metav1.ConditionFalse, hubv1.InvitationFailedReason,
			"no invitation is sent: the usage server has no public URL for the link (hub server --public-url)")
	}
	// The digest is stored before the email goes out, so that the link
	// works the moment it arrives. If sending fails, the next attempt makes
	// a new token: the failed one was never seen.
	token, digest, err := invitations.NewToken()
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	s.InvitationDigest, s.InvitationFor, s.InvitationSentAt = digest, m.Spec.ResendInvitation, nil
	s.InvitationExpiresAt = &metav1.Time{Time: now.Add(r.ttl()).Truncate(time.Second)}
	if err := client.IgnoreNotFound(invitations.WriteStatus(ctx, r.Client, m)); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Sender.Email(ctx, []string{m.Spec.Email}, r.message(ctx, m, token)); err != nil {
		_ = r.setSent(ctx, m, metav1.ConditionFalse, hubv1.InvitationFailedReason,
			fmt.Sprintf("the invitation email could not be sent (retrying): %v", err))
		return ctrl.Result{}, fmt.Errorf("sending the invitation of member %s: %w", m.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Invitation sent", "member", m.Name)
	return ctrl.Result{}, r.recordSent(ctx, m, digest, now)
}

// recordSent records that the invitation with digest went out at sentAt.
// The email is gone, so a write that meets another (the access controller
// writing its fields) is tried again on a fresh read, rather than sending a
// new invitation; an invitation accepted or replaced meanwhile is left be.
func (r *InvitationReconciler) recordSent(ctx context.Context, m *hubv1.Member, digest string, sentAt time.Time) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := r.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
			return client.IgnoreNotFound(err)
		}
		s := &m.Status
		if s.InvitationDigest != digest {
			return nil
		}
		s.InvitationSentAt = &metav1.Time{Time: sentAt.Truncate(time.Second)}
		return r.setSent(ctx, m, metav1.ConditionTrue, hubv1.ReconciledReason,
			fmt.Sprintf("invitation sent to %s; the link works until %s", m.Spec.Email, s.InvitationExpiresAt.UTC().Format(time.RFC3339)))
	})
}

func (r *InvitationReconciler) ttl() time.Duration {
	if r.TTL > 0 {
		return r.TTL
	}
	return invitations.DefaultTTL
}

// setSent sets the InvitationSent condition and writes the invitation's
// fields (an unchanged apply changes nothing stored).
func (r *InvitationReconciler) setSent(ctx context.Context, m *hubv1.Member, status metav1.ConditionStatus, reason, msg string) error {
	meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{Type: hubv1.InvitationSentCondition, Status: status,
		Reason: reason, ObservedGeneration: m.Generation, Message: msg})
	return client.IgnoreNotFound(invitations.WriteStatus(ctx, r.Client, m))
}

// message is the invitation email, with the link that carries token.
func (r *InvitationReconciler) message(ctx context.Context, m *hubv1.Member, token string) notify.Message {
	org := "your organization"
	o := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, o); err == nil && o.Spec.DisplayName != "" {
		org = o.Spec.DisplayName
	}
	link := invitations.Link(r.PublicURL, m.Name, token)
	expires := m.Status.InvitationExpiresAt.UTC().Format(time.RFC3339)
	return notify.Message{
		// A new Message-ID per invitation: each one is a different email.
		ID:      "invitation_" + m.Name + "_" + invitations.Digest(token)[7:23],
		Subject: fmt.Sprintf("[Platform Hub] You are invited to %s", org),
		Text: fmt.Sprintf("You are invited to %s on Platform Hub, with the %s role.\n\n"+
			"Accept the invitation here (the link works once, until %s):\n%s\n\n"+
			"If you did not expect this, ignore this email.\n", org, m.Spec.Role, expires, link),
	}
}

// SetupWithManager registers the reconciler; it runs on the elected
// replica, so that one invitation goes out. It wakes on spec changes only
// (a new Member, spec.resendInvitation): a failed attempt writes status (a
// new digest, the condition), and waking on that would retry at once, over
// and over, instead of after the failure's backoff.
func (r *InvitationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).For(&hubv1.Member{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("invitations").Complete(r)
}
