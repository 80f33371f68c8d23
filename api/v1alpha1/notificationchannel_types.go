package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotificationChannelSpec is where alerts go: exactly one of email, webhook
// or sms.
// +kubebuilder:validation:XValidation:rule="[has(self.email), has(self.webhook), has(self.sms)].filter(x, x).size() == 1",message="set exactly one of email, webhook or sms"
type NotificationChannelSpec struct {
	// default makes the channel receive the alerts of every project, so
	// administrators hear when any project nears its cap. Only channels in
	// the hub's namespace may be defaults.
	// +optional
	Default bool `json:"default,omitempty"`

	// email sends alerts by email, through the SMTP server of the hub's
	// configuration Secret.
	// +optional
	Email *EmailChannel `json:"email,omitempty"`

	// webhook posts alerts as JSON, signed the Standard Webhooks way.
	// +optional
	Webhook *WebhookChannel `json:"webhook,omitempty"`

	// sms sends alerts as text messages through the SMS provider of the
	// hub's configuration Secret. Enterprise plan only.
	// +optional
	SMS *SMSChannel `json:"sms,omitempty"`
}

// EmailChannel lists the recipients of alert emails.
type EmailChannel struct {
	// to lists the recipients.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:items:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	To []string `json:"to"`
}

// WebhookChannel is an HTTPS endpoint that receives signed alerts.
type WebhookChannel struct {
	// url receives a POST per alert. It must be https (plain http only in
	// the hub's dev mode); redirects to other hosts are not followed.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHost() != ''",message="must be an absolute https:// URL"
	URL string `json:"url"`

	// signingSecretRef names the Secret key (in this namespace) holding the
	// signing secret, "whsec_" followed by base64, as Standard Webhooks
	// define it.
	// +required
	SigningSecretRef SecretKeyRef `json:"signingSecretRef"`
}

// SMSChannel lists the phone numbers that receive alert texts.
type SMSChannel struct {
	// to lists E.164 phone numbers, such as "+8613800138000".
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Pattern=`^\+[1-9][0-9]{6,14}$`
	To []string `json:"to"`
}

// NotificationChannelStatus reports deliveries.
type NotificationChannelStatus struct {
	// lastDeliveryTime is when an alert was last delivered.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`

	// lastFailureTime and lastFailure describe the last failed attempt.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastFailure string `json:"lastFailure,omitempty"`

	// failures counts failed delivery attempts.
	// +optional
	Failures int64 `json:"failures,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready; Disabled when a webhook answered 410 Gone.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NotificationChannel is a destination for spending alerts and key expiry
// warnings: email recipients, a signed webhook, or SMS numbers.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=channel;channels,categories=hub
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Last Delivery",type=date,JSONPath=`.status.lastDeliveryTime`
// +kubebuilder:printcolumn:name="Failures",type=integer,JSONPath=`.status.failures`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NotificationChannel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec NotificationChannelSpec `json:"spec"`

	// +optional
	Status NotificationChannelStatus `json:"status,omitempty"`
}

// NotificationChannelList contains a list of NotificationChannel.
// +kubebuilder:object:root=true
type NotificationChannelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NotificationChannel `json:"items"`
}

func init() {
	register(&NotificationChannel{}, &NotificationChannelList{})
}
