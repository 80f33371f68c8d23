package webhooks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/egress"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-notificationchannel,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=notificationchannels,verbs=create;update;delete,versions=v1alpha1,name=vnotificationchannel.hub.minimax.io,admissionReviewVersions=v1

// NotificationChannelValidator checks what CEL cannot: where the channel
// lives, whether the plan allows SMS, and where a webhook may point.
type NotificationChannelValidator struct {
	// Projects finds the project of a namespace.
	Projects     *APIKeyValidator
	HubNamespace string
	// Egress decides where webhooks may point (public https receivers,
	// and what the operator allowlists); the usage server checks the same
	// policy again when it connects. Nil allows public https only.
	Egress *egress.Policy
}

var _ admission.Validator[*hubv1.NotificationChannel] = &NotificationChannelValidator{}

// ValidateCreate checks a new channel.
func (v *NotificationChannelValidator) ValidateCreate(ctx context.Context, c *hubv1.NotificationChannel) (admission.Warnings, error) {
	errs, err := v.check(ctx, c, true)
	if err != nil {
		return nil, err
	}
	return nil, invalidChannel(c, errs)
}

// ValidateUpdate checks a changed channel; its namespace cannot change.
func (v *NotificationChannelValidator) ValidateUpdate(ctx context.Context, _, c *hubv1.NotificationChannel) (admission.Warnings, error) {
	errs, err := v.check(ctx, c, false)
	if err != nil {
		return nil, err
	}
	return nil, invalidChannel(c, errs)
}

// ValidateDelete allows deletion.
func (v *NotificationChannelValidator) ValidateDelete(context.Context, *hubv1.NotificationChannel) (admission.Warnings, error) {
	return nil, nil
}

func (v *NotificationChannelValidator) check(ctx context.Context, c *hubv1.NotificationChannel, create bool) (field.ErrorList, error) {
	var errs field.ErrorList
	inHub := c.Namespace == v.HubNamespace
	if create && !inHub {
		project, err := v.Projects.project(ctx, c.Namespace)
		if err != nil {
			return nil, err
		}
		if project == nil {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), c.Namespace, fmt.Sprintf(
				"a NotificationChannel serves the project whose namespace it is in, or the whole organization in "+
					"the hub's namespace %q; this namespace is neither (kubectl get projects)", v.HubNamespace)))
		}
	}
	if c.Spec.Default && !inHub {
		errs = append(errs, field.Invalid(field.NewPath("spec", "default"), true, fmt.Sprintf(
			"only channels in the hub's namespace %q can receive every project's alerts; remove default, "+
				"or create the channel there", v.HubNamespace)))
	}
	if w := c.Spec.Webhook; w != nil {
		policy := v.Egress
		if policy == nil {
			policy = &egress.Policy{}
		}
		if err := policy.CheckURL(w.URL); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "webhook", "url"), w.URL, err.Error()))
		}
	}
	if c.Spec.SMS != nil {
		refusal, err := v.smsAllowed(ctx)
		if err != nil {
			return nil, err
		}
		if refusal != "" {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "sms"), refusal))
		}
	}
	return errs, nil
}

// smsAllowed tells whether the organization's plan allows SMS channels, and
// if not, why.
func (v *NotificationChannelValidator) smsAllowed(ctx context.Context) (string, error) {
	org := &hubv1.Organization{}
	err := v.Projects.get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org)
	switch {
	case apierrors.IsNotFound(err):
		return "SMS channels need the Enterprise plan, and there is no Organization yet; use email or a webhook", nil
	case err != nil:
		return "", apierrors.NewInternalError(fmt.Errorf("reading the organization: %w", err))
	case org.Spec.Plan != hubv1.PlanEnterprise:
		return fmt.Sprintf("SMS channels need the Enterprise plan, and the organization is on %s; "+
			"use email or a webhook, or change spec.plan of the Organization", planOf(org)), nil
	}
	return "", nil
}

func planOf(org *hubv1.Organization) hubv1.Plan {
	if org.Spec.Plan == "" {
		return "the default plan"
	}
	return org.Spec.Plan
}

func invalidChannel(c *hubv1.NotificationChannel, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(notificationChannelKind, c.Name, errs)
}
