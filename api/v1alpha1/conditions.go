package v1alpha1

// Condition types. Each states its polarity: "positive" conditions are True when
// all is well, "abnormal-true" conditions are True when something is wrong and
// absent otherwise (the kstatus convention, so Flux and Argo CD health checks
// understand them).
const (
	// ReadyCondition (positive) is True when the object is fully reconciled and
	// doing its job. It is always the first condition in status.
	ReadyCondition = "Ready"

	// StalledCondition (abnormal-true) is True when the controller cannot make
	// progress until the spec or the cluster changes; it stops retrying.
	StalledCondition = "Stalled"

	// NamespaceReadyCondition (positive) is True when a Project's namespace
	// exists and is owned by the Project.
	NamespaceReadyCondition = "NamespaceReady"

	// IssuingCondition (abnormal-true) is True while an APIKey needs a new key
	// that could not be written yet; its reason says why, and the controller
	// retries with backoff.
	IssuingCondition = "Issuing"

	// PricingIncompleteCondition (abnormal-true) is True when the
	// Organization's price list cannot price every usage: a service has no
	// default price for models it does not list.
	PricingIncompleteCondition = "PricingIncomplete"

	// CapReachedCondition (abnormal-true) is True on a Project (its Hard
	// spending cap is exhausted), on the Organization (an organization-wide
	// Hard cap is) and on the SpendingCap itself, while the gateway refuses
	// the traffic it covers. The usage server sets and clears it.
	CapReachedCondition = "CapReached"

	// DeliveredCondition (positive) is True when an APIKey's external delivery
	// (an External Secrets Operator PushSecret) is in place.
	DeliveredCondition = "Delivered"

	// DisabledCondition (abnormal-true) is True on a NotificationChannel
	// whose webhook answered 410 Gone: nothing is sent to it until its spec
	// changes.
	DisabledCondition = "Disabled"

	// InvitationSentCondition (positive) is True on a Member once the
	// invitation email went out; False, with the reason, while it cannot be
	// sent.
	InvitationSentCondition = "InvitationSent"

	// DeadLetteredCondition (abnormal-true) is True on a NotificationChannel
	// when an alert to it failed for the whole retry period and was given
	// up; the next successful delivery sets it False.
	DeadLetteredCondition = "DeadLettered"

	// BeyondLifetimePolicyCondition (abnormal-true) is True on an APIKey
	// whose current key outlives the organization's maxLifetimeDays (it was
	// issued before the maximum was set or lowered), and on the
	// Organization while any key does. The next rotation issues a key
	// within the policy.
	BeyondLifetimePolicyCondition = "BeyondLifetimePolicy"

	// RenewBeforeAdjustedCondition (abnormal-true) is True on an APIKey
	// whose spec.rotation.renewBefore would renew the key too soon after
	// issuance (less than a third of its lifetime, or less than its
	// overlap): the key renews when a third of its lifetime is left.
	RenewBeforeAdjustedCondition = "RenewBeforeAdjusted"
)

// Condition reasons. They double as event reasons.
const (
	// ReconciledReason: the object is reconciled and nothing is pending.
	ReconciledReason = "Reconciled"

	// LifetimeBeyondPolicyReason: a key outlives the lifetime policy.
	LifetimeBeyondPolicyReason = "LifetimeBeyondPolicy"

	// NamespaceDeletedReason: a project's namespace is being deleted
	// outside the hub (not by deleting the Project).
	NamespaceDeletedReason = "NamespaceDeleted"

	// NamespaceRecreatedReason: a project's namespace was deleted outside
	// the hub and created again, empty.
	NamespaceRecreatedReason = "NamespaceRecreated"

	// RenewBeforeTooLongReason: renewBefore leaves too little of a key's
	// lifetime before renewal.
	RenewBeforeTooLongReason = "RenewBeforeTooLong"

	// ProgressingReason: the controller is working towards the desired state.
	ProgressingReason = "Progressing"

	// NamespaceCreatedReason: the controller created the Project's namespace.
	NamespaceCreatedReason = "NamespaceCreated"

	// NamespaceConflictReason: a namespace with the Project's name exists but was
	// not created for this Project; the hub never adopts it.
	NamespaceConflictReason = "NamespaceConflict"

	// NamespaceTerminatingReason: the namespace is being deleted, for example
	// left over from an earlier Project with the same name.
	NamespaceTerminatingReason = "NamespaceTerminating"

	// ArchivedReason: the Project is archived; its keys are suspended.
	ArchivedReason = "Archived"

	// DeletingReason: the object is being deleted and waits for what it owns to go.
	DeletingReason = "Deleting"

	// InvalidTimeZoneReason: the Organization's billing time zone is not a known
	// IANA zone on the manager.
	InvalidTimeZoneReason = "InvalidTimeZone"

	// NoDefaultPriceReason: a service has no default price.
	NoDefaultPriceReason = "NoDefaultPrice"

	// InvalidPriceReason: a price cannot be read (the API normally refuses it).
	InvalidPriceReason = "InvalidPrice"

	// KeyIssuedReason: the first key of an APIKey was issued.
	KeyIssuedReason = "Issued"

	// KeyRotatedReason: a new key replaced the previous one, which stays valid
	// for the overlap window.
	KeyRotatedReason = "Rotated"

	// PreviousKeyRetiredReason: the previous key's overlap window ended.
	PreviousKeyRetiredReason = "PreviousKeyRetired"

	// KeyExpiredReason: the key reached its expiry time.
	KeyExpiredReason = "Expired"

	// KeyRevokedReason: the key was revoked.
	KeyRevokedReason = "Revoked"

	// ProjectArchivedReason: the key's project is archived.
	ProjectArchivedReason = "ProjectArchived"

	// CapReachedReason: the key's project reached a hard spending cap.
	CapReachedReason = "CapReached"

	// NotInProjectReason: the APIKey is not in the namespace of a Project.
	NotInProjectReason = "NotInProject"

	// SecretConflictReason: the Secret the key should go to exists and is not
	// owned by the APIKey; the hub never overwrites it.
	SecretConflictReason = "SecretConflict"

	// IssuanceFailedReason: writing a new key failed; the controller backs off.
	IssuanceFailedReason = "IssuanceFailed"

	// AwaitingKeyRequestReason: a key of delivery mode None needs a new key
	// (spec.rotation.trigger changed) that only the management API can
	// mint; the current key keeps working meanwhile.
	AwaitingKeyRequestReason = "AwaitingKeyRequest"

	// DeliveryFailedReason: writing the PushSecret failed; it is retried.
	DeliveryFailedReason = "DeliveryFailed"

	// AlertDeliveredReason: a NotificationChannel accepted an alert.
	AlertDeliveredReason = "AlertDelivered"

	// AlertDeliveryFailingReason: a NotificationChannel refused or could not
	// be reached; the alert is retried with backoff.
	AlertDeliveryFailingReason = "AlertDeliveryFailing"

	// InvitationFailedReason: the invitation email could not be sent; it is
	// retried with backoff.
	InvitationFailedReason = "InvitationFailed"

	// GoneReason: a webhook answered 410 Gone.
	GoneReason = "Gone"

	// DeadLetterReason: an alert was given up after the retry period.
	DeadLetterReason = "DeadLetter"

	// ExternalSecretsNotInstalledReason: delivery needs the External Secrets
	// Operator's PushSecret API, which the cluster does not serve.
	ExternalSecretsNotInstalledReason = "ExternalSecretsNotInstalled"
)

// Annotations and labels the hub reads or writes.
const (
	// ProjectLabel marks a namespace as the namespace of the named Project.
	ProjectLabel = "hub.minimax.io/project"

	// ConfirmDeleteAnnotation must be set to a Project's own name before the
	// Project (and with it its namespace) can be deleted.
	ConfirmDeleteAnnotation = "hub.minimax.io/confirm-delete"

	// ProjectFinalizer keeps a Project until its namespace is gone.
	ProjectFinalizer = "hub.minimax.io/project-namespace"

	// APIKeyLabel names the APIKey whose key a Secret holds. The manager
	// caches only Secrets with this label.
	APIKeyLabel = "hub.minimax.io/apikey"

	// KeyIDLabel is the public ID of the key a Secret holds.
	KeyIDLabel = "hub.minimax.io/key-id"

	// AccessLabel marks the RBAC objects the hub generates from Members,
	// Groups and project access lists; its value is the role.
	AccessLabel = "hub.minimax.io/access"

	// ScopeLabel is the scope of the key a Secret holds.
	ScopeLabel = "hub.minimax.io/scope"

	// RevisionAnnotation is the revision of the key a Secret holds. A key
	// minted for revision N+1 is adopted after a crash, never minted twice.
	RevisionAnnotation = "hub.minimax.io/revision"

	// IssuedAtAnnotation is when the key a Secret holds was issued (RFC 3339).
	IssuedAtAnnotation = "hub.minimax.io/issued-at"
)

// Data keys of an API key's Secret.
const (
	// SecretKeyCurrent holds the current key.
	SecretKeyCurrent = "api-key"
	// SecretKeyPrevious holds the previous key during a rotation's overlap.
	SecretKeyPrevious = "api-key-previous"
)
