package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIKeyScope is what an API key may do.
// +kubebuilder:validation:Enum=Read;Standard;Admin
type APIKeyScope string

// API key scopes.
const (
	// ScopeRead reads models, files and usage; it cannot call inference.
	ScopeRead APIKeyScope = "Read"
	// ScopeStandard calls every inference API.
	ScopeStandard APIKeyScope = "Standard"
	// ScopeAdmin also uses the management API.
	ScopeAdmin APIKeyScope = "Admin"
)

// APIKeySpec is what a developer declares about an API key.
// +kubebuilder:validation:XValidation:rule="!(has(oldSelf.revoked) && oldSelf.revoked) || (has(self.revoked) && self.revoked)",message="a revoked key stays revoked; create a new APIKey instead"
// +kubebuilder:validation:XValidation:rule="(has(self.secretTemplate) && has(self.secretTemplate.name) ? self.secretTemplate.name : '-') == (has(oldSelf.secretTemplate) && has(oldSelf.secretTemplate.name) ? oldSelf.secretTemplate.name : '-')",message="secretTemplate.name cannot change once set; create a new APIKey for a Secret of another name"
// +kubebuilder:validation:XValidation:rule="(has(self.delivery) && has(self.delivery.mode) ? self.delivery.mode : 'Secret') == (has(oldSelf.delivery) && has(oldSelf.delivery.mode) ? oldSelf.delivery.mode : 'Secret')",message="delivery.mode cannot change; create a new APIKey (a key request) with the mode you need"
// +kubebuilder:validation:XValidation:rule="!has(self.delivery) || !has(self.delivery.mode) || self.delivery.mode != 'None' || !has(self.secretTemplate)",message="a key with delivery.mode None has no Secret: remove secretTemplate"
// +kubebuilder:validation:XValidation:rule="!has(self.delivery) || !has(self.delivery.mode) || self.delivery.mode != 'None' || !has(self.rotation) || !has(self.rotation.renewBefore)",message="a key with delivery.mode None is rotated only by a rotation request, which shows the new key: remove rotation.renewBefore"
type APIKeySpec struct {
	// label says what the key is for, as people read it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Label string `json:"label,omitempty"`

	// scope is what the key may do: Read, Standard or Admin. It cannot change;
	// create another key for another scope.
	// +optional
	// +kubebuilder:default=Standard
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="scope cannot change; create a new APIKey with the scope you need"
	Scope APIKeyScope `json:"scope,omitempty"`

	// expiresAfter is how long each issued key stays valid: 30d, 90d, 180d or
	// Never. The organization's policy may forbid longer lifetimes and Never.
	// When absent, the organization's default applies (see status.lifetime).
	// +optional
	ExpiresAfter *KeyLifetime `json:"expiresAfter,omitempty"`

	// owner is the email address of the person responsible for the key.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@\\\\s]+@[^@\\\\s]+$')",message="must be an email address such as alice@example.com"
	Owner string `json:"owner"`

	// revoked, when true, stops the key for good and deletes its Secret. It
	// cannot be undone; the key ID and digest stay in status for audit.
	// +optional
	Revoked bool `json:"revoked,omitempty"`

	// rotation controls key rotation.
	// +optional
	Rotation *RotationSpec `json:"rotation,omitempty"`

	// secretTemplate shapes the Secret that holds the key.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// delivery also pushes the key to an external secret store.
	// +optional
	Delivery *KeyDelivery `json:"delivery,omitempty"`
}

// RotationSpec controls key rotation. A rotation mints a new key; the
// previous key keeps working for the overlap window, so clients can switch
// without downtime.
type RotationSpec struct {
	// trigger rotates the key whenever it changes: set it to a counter or a
	// timestamp and bump it in a commit to rotate.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Trigger string `json:"trigger,omitempty"`

	// overlap is how long the previous key stays valid after a rotation,
	// between 5m and 168h (7 days). Default 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('5m') && duration(self) <= duration('168h')",message="must be a duration between 5m and 168h, such as 30m or 24h"
	Overlap *metav1.Duration `json:"overlap,omitempty"`

	// renewBefore, when set, rotates the key automatically this long before
	// it expires, between 1h and 720h (30 days).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('1h') && duration(self) <= duration('720h')",message="must be a duration between 1h and 720h, such as 168h"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// retirePreviousKeyID ends the overlap early: when it equals the previous
	// key's ID (status.previousKey.keyID), the previous key stops working now.
	// +optional
	// +kubebuilder:validation:MaxLength=10
	RetirePreviousKeyID string `json:"retirePreviousKeyID,omitempty"`
}

// SecretTemplate shapes the Secret that holds the key.
type SecretTemplate struct {
	// name of the Secret. Default: the APIKey's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="must be a valid Secret name: lowercase letters, digits, '-' and '.'"
	Name string `json:"name,omitempty"`

	// labels are added to the Secret, for example the label a gateway selects
	// key Secrets by (Authorino: authorino.kuadrant.io/managed-by).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('hub.minimax.io/'))",message="labels under hub.minimax.io/ are set by the hub"
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the Secret.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('hub.minimax.io/'))",message="annotations under hub.minimax.io/ are set by the hub"
	Annotations map[string]string `json:"annotations,omitempty"`

	// aliases are extra data keys that hold the current key too, so that a
	// gateway can read the Secret as it is (Authorino reads "api_key").
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:XValidation:rule="self.all(a, a != 'api-key' && a != 'api-key-previous')",message="api-key and api-key-previous are always present; choose other names"
	Aliases []string `json:"aliases,omitempty"`
}

// KeyDeliveryMode says where an issued key's plaintext goes.
// +kubebuilder:validation:Enum=Secret;None
type KeyDeliveryMode string

// Key delivery modes.
const (
	// DeliverySecret writes the key into the APIKey's Secret (the default).
	DeliverySecret KeyDeliveryMode = "Secret"
	// DeliveryNone keeps the key nowhere: only its digest is stored, and
	// its plaintext is shown once, in the answer to the management API's
	// key request or rotation request that made it.
	DeliveryNone KeyDeliveryMode = "None"
)

// KeyDelivery says where the key goes: the key's Secret, and from there,
// optionally, an external secret store; or nowhere at all.
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'None' || !has(self.externalSecret)",message="a key with mode None has no Secret to push: remove externalSecret"
type KeyDelivery struct {
	// mode is Secret (the default: the controller writes the key into the
	// APIKey's Secret) or None: the key exists only in the answer to the
	// management API's key request that created it, and its Secret is
	// never written. Keys of mode None are created by key requests and
	// rotated by rotation requests (docs/management-api.md), which mint
	// the key and set the hub.minimax.io/issued-key annotation; the
	// controller records the digest from there. It cannot change.
	// +optional
	Mode KeyDeliveryMode `json:"mode,omitempty"`

	// externalSecret pushes the key's Secret to a secret store through the
	// External Secrets Operator (a PushSecret the hub owns).
	// +optional
	ExternalSecret *ExternalSecretDelivery `json:"externalSecret,omitempty"`
}

// ExternalSecretDelivery names where External Secrets Operator puts the key.
type ExternalSecretDelivery struct {
	// secretStoreRef names the SecretStore (in the key's namespace) or
	// ClusterSecretStore to push to.
	// +required
	SecretStoreRef SecretStoreRef `json:"secretStoreRef"`

	// remoteKey is the name of the secret in the external store.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	RemoteKey string `json:"remoteKey"`

	// property, when set, stores the key under this property of the remote
	// secret instead of as the whole secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Property string `json:"property,omitempty"`
}

// SecretStoreRef names an External Secrets Operator store.
type SecretStoreRef struct {
	// name of the store.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// kind is SecretStore (default) or ClusterSecretStore.
	// +optional
	// +kubebuilder:default=SecretStore
	// +kubebuilder:validation:Enum=SecretStore;ClusterSecretStore
	Kind string `json:"kind,omitempty"`
}

// APIKeyPhase summarises where a key is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Rotating;Suspended;Expired;Revoked
type APIKeyPhase string

// API key phases.
const (
	// KeyPending: no key has been issued yet (or the Secret conflicts).
	KeyPending APIKeyPhase = "Pending"
	// KeyActive: one key is valid.
	KeyActive APIKeyPhase = "Active"
	// KeyRotating: a new key was issued and the previous one is still valid
	// until status.previousKey.validUntil.
	KeyRotating APIKeyPhase = "Rotating"
	// KeySuspended: the project is archived or has reached a hard spending
	// cap; the Secret stays, the key is refused until that clears.
	KeySuspended APIKeyPhase = "Suspended"
	// KeyExpired: the key passed status.expiresAt; its Secret is deleted.
	// Bumping spec.rotation.trigger issues a new key.
	KeyExpired APIKeyPhase = "Expired"
	// KeyRevoked: spec.revoked is true; the Secret is deleted for good.
	KeyRevoked APIKeyPhase = "Revoked"
)

// APIKeyStatus is what the hub observed and issued.
type APIKeyStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the key's state; Ready comes first.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase summarises the key's state.
	// +optional
	Phase APIKeyPhase `json:"phase,omitempty"`

	// keyID is the public ID of the current key (also in the key itself).
	// +optional
	KeyID string `json:"keyID,omitempty"`

	// digest is the SHA-256 digest of the current key, "sha256:<hex>". The
	// gateway authenticates keys against it; the plaintext is never stored
	// outside the Secret.
	// +optional
	Digest string `json:"digest,omitempty"`

	// revision counts the keys issued for this APIKey; the Secret records the
	// revision of the key it holds.
	// +optional
	Revision int64 `json:"revision,omitempty"`

	// lifetime is the effective lifetime of issued keys: spec.expiresAfter,
	// or the organization's default when that is absent.
	// +optional
	Lifetime KeyLifetime `json:"lifetime,omitempty"`

	// requestedLifetime is spec.expiresAfter as it was when lifetime was
	// last set (empty when none was asked for). A change of
	// spec.expiresAfter moves the current key's expiry, within the policy
	// then; a change of the organization's policy does not (it applies
	// from the next key, and a key beyond it is reported).
	// +optional
	RequestedLifetime KeyLifetime `json:"requestedLifetime,omitempty"`

	// createdAt is when the current key was issued.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`

	// expiresAt is when the current key stops working; absent for keys that
	// never expire.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// lastUsedAt is when the gateway last accepted the key (filled by usage
	// metering).
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// usage is the key's usage and spend in the current billing cycle,
	// written by the usage server.
	// +optional
	Usage *UsageSummary `json:"usage,omitempty"`

	// secretName is the Secret holding the key.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// previousKey is the key replaced by the last rotation, while it is still
	// valid.
	// +optional
	PreviousKey *PreviousKey `json:"previousKey,omitempty"`

	// retiredKeys are the last keys that rotations replaced and that no
	// longer work, newest first, at most five: the gateway tells the holder
	// of one that it was rotated out and when, instead of "incorrect key".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	RetiredKeys []RetiredKey `json:"retiredKeys,omitempty"`

	// observedRotationTrigger is the spec.rotation.trigger the current key
	// answers.
	// +optional
	ObservedRotationTrigger string `json:"observedRotationTrigger,omitempty"`

	// revokedAt is when the key was revoked.
	// +optional
	RevokedAt *metav1.Time `json:"revokedAt,omitempty"`

	// failedIssuanceAttempts counts failed attempts to issue the next key in a
	// row; the controller backs off exponentially between them.
	// +optional
	FailedIssuanceAttempts int32 `json:"failedIssuanceAttempts,omitempty"`

	// lastFailureTime is when issuance last failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`
}

// PreviousKey is a replaced key that still works during the overlap window.
type PreviousKey struct {
	// keyID is the previous key's public ID.
	// +required
	KeyID string `json:"keyID"`
	// digest is the previous key's SHA-256 digest.
	// +required
	Digest string `json:"digest"`
	// validUntil is when the previous key stops working.
	// +required
	ValidUntil metav1.Time `json:"validUntil"`
	// rotationTrigger is the spec.rotation.trigger that issued the previous
	// key, when a rotation did: a repeated rotation request names it.
	// +optional
	RotationTrigger string `json:"rotationTrigger,omitempty"`
}

// RetiredKeysLimit is how many retired keys an APIKey's status lists.
const RetiredKeysLimit = 5

// RetiredKey is a key that a rotation replaced and that no longer works.
type RetiredKey struct {
	// keyID is the retired key's public ID.
	// +required
	KeyID string `json:"keyID"`
	// digest is the retired key's SHA-256 digest.
	// +required
	Digest string `json:"digest"`
	// retiredAt is when the key stopped working: the end of its overlap
	// window, a retirement by spec.rotation.retirePreviousKeyID, or the
	// next rotation.
	// +required
	RetiredAt metav1.Time `json:"retiredAt"`
	// rotationTrigger is the spec.rotation.trigger that issued the retired
	// key, when a rotation did.
	// +optional
	RotationTrigger string `json:"rotationTrigger,omitempty"`
}

// APIKey is a credential for the platform's API, issued into a Secret in the
// project's namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=key
// +kubebuilder:printcolumn:name="Scope",type=string,JSONPath=`.spec.scope`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Key ID",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`,priority=1
// +kubebuilder:printcolumn:name="Label",type=string,JSONPath=`.spec.label`,priority=1
// +kubebuilder:printcolumn:name="Lifetime",type=string,JSONPath=`.status.lifetime`,priority=1
type APIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the key.
	// +required
	Spec APIKeySpec `json:"spec"`

	// status is the observed state of the key.
	// +optional
	Status APIKeyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// APIKeyList is a list of APIKeys.
type APIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []APIKey `json:"items"`
}

func init() {
	register(&APIKey{}, &APIKeyList{})
}

// Days returns the lifetime in days; ok is false for Never.
func (l KeyLifetime) Days() (days int32, ok bool) {
	switch l {
	case KeyLifetime30Days:
		return 30, true
	case KeyLifetime90Days:
		return 90, true
	case KeyLifetime180Days:
		return 180, true
	}
	return 0, false
}

// Duration returns the lifetime as a duration; ok is false for Never.
func (l KeyLifetime) Duration() (time.Duration, bool) {
	days, ok := l.Days()
	return time.Duration(days) * 24 * time.Hour, ok
}
