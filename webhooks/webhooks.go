// Package webhooks holds the admission checks that CEL rules in the CRDs
// cannot express, because they need other objects or the requesting user.
package webhooks

import (
	ctrl "sigs.k8s.io/controller-runtime"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
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

// SetupWithManager registers every admission webhook with the manager's
// webhook server. hubNamespace is the hub's own namespace; devMode accepts
// plain http webhook URLs.
func SetupWithManager(mgr ctrl.Manager, hubNamespace string, devMode bool) error {
	tm := team{Reader: mgr.GetClient()}
	projects := &APIKeyValidator{Cache: mgr.GetClient(), APIReader: mgr.GetAPIReader(), team: tm}
	if err := ctrl.NewWebhookManagedBy(mgr, &hubv1.Project{}).
		WithValidator(&ProjectValidator{Reader: mgr.GetAPIReader(), team: tm}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &hubv1.APIKey{}).
		WithValidator(projects).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &hubv1.Member{}).
		WithValidator(&MemberValidator{team: tm}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &hubv1.SpendingCap{}).
		WithValidator(&SpendingCapValidator{Projects: projects, HubNamespace: hubNamespace}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &hubv1.NotificationChannel{}).
		WithValidator(&NotificationChannelValidator{Projects: projects, HubNamespace: hubNamespace, AllowHTTP: devMode}).
		Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &hubv1.Organization{}).
		WithValidator(&OrganizationValidator{team: tm}).
		Complete()
}
