package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KeyRequest creates an API key and shows its plaintext once, in the answer
// to the create, the way a ServiceAccount token request does: create one in
// a project's namespace, and status.key holds the new key. Nothing of the
// request is stored but the APIKey it creates, named after the request
// (metadata.name, or metadata.generateName with a suffix), which the hub's
// controller then runs as any other. A second read of that APIKey, or a
// repeat of the request, shows the key ID and never the key.
//
// Who may create one: Developers in their projects, Admins and Owners;
// the APIKey is created as the caller (impersonated), so the same rules
// hold as for `kubectl create` of an APIKey.
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:onlyVerbs=create
type KeyRequest struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the key asked for.
	Spec KeyRequestSpec `json:"spec"`
	// status is the key made.
	// +optional
	Status KeyRequestStatus `json:"status,omitempty"`
}

// KeyRequestSpec is the key asked for. label, scope, expiresAfter and owner
// mean what they mean on an APIKey (docs/api/apikey.md), and are checked
// by the same rules.
type KeyRequestSpec struct {
	// idempotencyKey makes the request safe to repeat: a request in the same
	// namespace with the same idempotency key gets the key ID of the key
	// the first one made, and no key. At most 255 characters; only its
	// SHA-256 digest is kept (on the APIKey). Without one, a repeated
	// request is refused as a name already taken, unless it uses
	// generateName, which makes a second key.
	// +optional
	IdempotencyKey string `json:"idempotencyKey,omitempty"`

	// label says what the key is for.
	// +optional
	Label string `json:"label,omitempty"`
	// scope is Read, Standard (the default) or Admin.
	// +optional
	Scope string `json:"scope,omitempty"`
	// expiresAfter is 30d, 90d, 180d or Never; empty means the
	// organization's default lifetime.
	// +optional
	ExpiresAfter string `json:"expiresAfter,omitempty"`
	// owner is the email of the member the key belongs to; empty means the
	// caller, when the caller is a member.
	// +optional
	Owner string `json:"owner,omitempty"`

	// delivery is None (the default): the key is kept nowhere, only its
	// digest is stored, and this answer is the one place it is ever shown;
	// or Secret: the key is also written into the APIKey's Secret, as for
	// an APIKey created with kubectl, for workloads that mount it.
	// +optional
	Delivery KeyDelivery `json:"delivery,omitempty"`
}

// KeyDelivery is where a requested key goes besides the answer: None or
// Secret.
type KeyDelivery string

// Key deliveries.
const (
	// DeliveryNone keeps the key nowhere: only the answer holds it.
	DeliveryNone KeyDelivery = "None"
	// DeliverySecret also writes it into the APIKey's Secret.
	DeliverySecret KeyDelivery = "Secret"
)

// KeyRequestStatus is the key made.
type KeyRequestStatus struct {
	// apiKeyName is the name of the APIKey created (in the request's
	// namespace).
	APIKeyName string `json:"apiKeyName"`
	// keyID is the key's public ID, which usage, logs and the dashboard
	// show.
	KeyID string `json:"keyID"`
	// key is the key itself, present only in the answer to the request
	// that made it: it is never shown again. Empty when the request
	// repeated an earlier one's idempotency key.
	// +optional
	Key string `json:"key,omitempty"`
	// secretName names the Secret that holds the key, with delivery Secret.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// expiresAt is when the key stops working; empty for a key that never
	// expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// repeated is true when the request repeated an earlier one's
	// idempotency key: keyID is that request's key, and key is empty.
	// +optional
	Repeated bool `json:"repeated,omitempty"`
}

// RotationRequest rotates an API key and shows the new key once, in the
// answer to the create: create one in the key's namespace, and status.key
// holds the new key. The key it replaces keeps working for the APIKey's
// overlap (spec.rotation.overlap, 24 hours by default), so clients can move
// over. A request that repeats a rotation ID gets the key ID of the key
// that rotation made, and no key.
//
// Who may create one: whoever may update the APIKey (Developers in their
// projects for their keys, Admins and Owners); the APIKey is changed as the
// caller (impersonated).
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:onlyVerbs=create
type RotationRequest struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the key to rotate.
	Spec RotationRequestSpec `json:"spec"`
	// status is the new key.
	// +optional
	Status RotationRequestStatus `json:"status,omitempty"`
}

// RotationRequestSpec names the key to rotate.
type RotationRequestSpec struct {
	// apiKeyName is the name of the APIKey to rotate, in the request's
	// namespace.
	APIKeyName string `json:"apiKeyName"`
	// rotationID names this rotation, so that it is safe to repeat: it
	// becomes the APIKey's spec.rotation.trigger. Empty means the request's
	// metadata.name. At most 63 characters.
	// +optional
	RotationID string `json:"rotationID,omitempty"`
}

// RotationRequestStatus is the new key.
type RotationRequestStatus struct {
	// rotationID is the rotation this answer is about.
	RotationID string `json:"rotationID"`
	// keyID is the new key's public ID.
	KeyID string `json:"keyID"`
	// key is the new key, present only in the answer to the request that
	// made it; empty when the request repeated a rotation ID.
	// +optional
	Key string `json:"key,omitempty"`
	// previousKeyID is the key replaced, which works until
	// previousKeyValidUntil.
	// +optional
	PreviousKeyID string `json:"previousKeyID,omitempty"`
	// +optional
	PreviousKeyValidUntil *metav1.Time `json:"previousKeyValidUntil,omitempty"`
	// expiresAt is when the new key stops working; empty when it never
	// expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// repeated is true when the request repeated a rotation ID: keyID is
	// the key that rotation made, and key is empty. The key remembers the
	// rotation IDs of its current key, its previous key and its last five
	// retired keys; an older one rotates again.
	// +optional
	Repeated bool `json:"repeated,omitempty"`
	// superseded is true when the repeated rotation's key has since been
	// replaced by a later rotation: keyID is no longer the current key.
	// +optional
	Superseded bool `json:"superseded,omitempty"`
}
