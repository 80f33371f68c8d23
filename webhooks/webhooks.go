// Package webhooks holds the admission checks that CEL rules in the CRDs
// cannot express, because they need other objects or the requesting user.
package webhooks

import (
	"errors"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/egress"
)

var (
	projectKind      = hubv1.GroupVersion.WithKind("Project").GroupKind()
	projectResource  = hubv1.GroupVersion.WithResource("projects").GroupResource()
	organizationKind = hubv1.GroupVersion.WithKind("Organization").GroupKind()
	apiKeyKind       = hubv1.GroupVersion.WithKind("APIKey").GroupKind()
	spendingCapKind  = hubv1.GroupVersion.WithKind("SpendingCap").GroupKind()

	notificationChannelKind = hubv1.GroupVersion.WithKind("NotificationChannel").GroupKind()
	memberKind              = hubv1.GroupVersion.WithKind("Member").GroupKind()
)

// Options configure the webhooks.
type Options struct {
	// HubNamespace is the hub's own namespace.
	HubNamespace string
	// Egress decides where NotificationChannel webhooks may point; nil
	// allows public https receivers only.
	Egress *egress.Policy
	// ReservedProjectNames are path.Match patterns of names no Project may
	// take; nil means DefaultReservedProjectNames.
	ReservedProjectNames []string
	// Stamper, when set, takes what admission saw of every change the
	// checks let through, to be audited once stored.
	Stamper Stamper
	// Clock stamps audit entries; nil means the real clock (the right one
	// outside tests: entries say when a person acted).
	Clock clock.PassiveClock

	team team
}

// AuditedKinds are the kinds whose admission is stamped for the audit log,
// one object of each: every kind with a webhook here. The manager watches
// them to see the changes stored.
// +kubebuilder:rbac:groups=hub.minimax.io,resources=projects;apikeys;members;groups;spendingcaps;notificationchannels;organizations,verbs=get;list;watch
func AuditedKinds() []client.Object {
	return []client.Object{&hubv1.Project{}, &hubv1.APIKey{}, &hubv1.Member{}, &hubv1.Group{}, &hubv1.SpendingCap{},
		&hubv1.NotificationChannel{}, &hubv1.Organization{}}
}

// SetupWithManager registers every admission webhook with the manager's
// webhook server.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	tm := team{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	opts.team = tm
	projects := &APIKeyValidator{Cache: mgr.GetClient(), APIReader: mgr.GetAPIReader(), team: tm}
	steps := []error{
		register(mgr, opts, &hubv1.Project{}, &ProjectValidator{Reader: mgr.GetAPIReader(), Reserved: opts.ReservedProjectNames, team: tm}, projectChanges),
		register(mgr, opts, &hubv1.APIKey{}, projects, nil),
		register(mgr, opts, &hubv1.Member{}, &MemberValidator{team: tm}, memberChanges),
		register(mgr, opts, &hubv1.Group{}, &GroupValidator{}, groupChanges),
		register(mgr, opts, &hubv1.SpendingCap{}, &SpendingCapValidator{Projects: projects, HubNamespace: opts.HubNamespace}, nil),
		register(mgr, opts, &hubv1.NotificationChannel{},
			&NotificationChannelValidator{Projects: projects, HubNamespace: opts.HubNamespace, Egress: opts.Egress}, nil),
		register(mgr, opts, &hubv1.Organization{}, &OrganizationValidator{team: tm}, organizationChanges),
	}
	return errors.Join(steps...)
}

// register serves a kind's validator, behind the organization's MFA policy
// and audited.
func register[T client.Object](mgr ctrl.Manager, opts Options, obj T, v admission.Validator[T], changes func(old, new T) []auditlog.FieldChange) error {
	guarded := &multiFactorRequired[T]{inner: v, team: opts.team}
	return ctrl.NewWebhookManagedBy(mgr, obj).
		WithValidator(&audited[T]{inner: guarded, stamper: opts.Stamper, clock: opts.Clock, changes: changes,
			hubNamespace: opts.HubNamespace}).
		Complete()
}
