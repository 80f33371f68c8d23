package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuditEvent is one change to a hub resource, as the hub's audit log
// recorded it at admission: who made it (and through which component and
// hub key), what changed, and when. Audit events are listed only, a page at
// a time, oldest first; the range and filters are field selectors
// (AuditEventFields). Named after the entry's ID.
//
// Who may list them: Admins and Owners.
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:nonNamespaced
// +genclient:onlyVerbs=list
type AuditEvent struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// time is when admission let the change through.
	Time metav1.Time `json:"time"`
	// actor is the user kube-apiserver authenticated; groups are theirs.
	Actor string `json:"actor"`
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
	// via names the hub component that acted for the actor, by
	// impersonation (management-api), when one did.
	// +optional
	Via string `json:"via,omitempty"`
	// keyID is the hub key the actor signed in to the management API with,
	// when they did.
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// action is create, update or delete.
	Action string `json:"action"`
	// object is the resource changed.
	Object AuditObject `json:"object"`
	// changes are the old and new values of the fields that grant access
	// (roles, membership, project access lists) and of the plan.
	// +optional
	// +listType=atomic
	Changes []FieldChange `json:"changes,omitempty"`
}

// AuditObject names the resource an audit event is about.
type AuditObject struct {
	Kind string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// +optional
	UID string `json:"uid,omitempty"`
	// resourceVersion is the object's version the change produced.
	// +optional
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// FieldChange is a field's value before and after a change.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// AuditEventList is a page of audit events.
//
// +kubebuilder:object:root=true
type AuditEventList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuditEvent `json:"items"`
}

// Alert is one alert the hub fired: a spending cap crossing a threshold,
// or an API key nearing its expiry, with its delivery to each notification
// channel. Alerts are listed only, a page at a time, oldest first; the range
// and filters are field selectors (AlertFields). Named after the alert's ID.
//
// Who may list them: Admins and Owners.
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:nonNamespaced
// +genclient:onlyVerbs=list
type Alert struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// time is when the alert fired.
	Time metav1.Time `json:"time"`
	// type is spendingcap.threshold or apikey.expiring.
	Type string `json:"type"`
	// source names the SpendingCap or APIKey the alert is about.
	Source AlertSource `json:"source"`
	// project is the project concerned; empty for the organization.
	// +optional
	Project string `json:"project,omitempty"`
	// cycleStart is the billing cycle of a cap alert.
	// +optional
	CycleStart *metav1.Time `json:"cycleStart,omitempty"`
	// threshold is the percentage of a cap alert, or the days left of a key
	// expiry warning.
	Threshold int32 `json:"threshold"`
	// deliveries are the alert's deliveries, one per channel.
	// +optional
	// +listType=atomic
	Deliveries []AlertDelivery `json:"deliveries,omitempty"`
}

// AlertSource names the object an alert is about.
type AlertSource struct {
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// +optional
	UID string `json:"uid,omitempty"`
}

// AlertDelivery is an alert's delivery to one notification channel.
type AlertDelivery struct {
	// channel is the NotificationChannel, as namespace/name.
	Channel string `json:"channel"`
	// state is Pending (retried until delivered), Delivered or Dead (given
	// up on: the channel refused it for good, or retries ran out).
	State string `json:"state"`
	// attempts counts the attempts so far.
	Attempts int32 `json:"attempts"`
	// lastError says why the last attempt failed.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// updated is when the delivery last changed.
	Updated metav1.Time `json:"updated"`
}

// AlertList is a page of alerts.
//
// +kubebuilder:object:root=true
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Alert `json:"items"`
}
