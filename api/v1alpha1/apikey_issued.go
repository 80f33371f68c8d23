package v1alpha1

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// Annotations the management API sets on the APIKeys it creates.
const (
	// IssuedKeyAnnotation carries a key the management API minted for an
	// APIKey of delivery mode None: its public ID and SHA-256 digest, never
	// its plaintext, as the JSON of an IssuedKey. The APIKey controller
	// records it in status instead of minting. Admission accepts it only
	// from the management API (docs/management-api.md).
	IssuedKeyAnnotation = "hub.minimax.io/issued-key"

	// IdempotencyKeyAnnotation is the SHA-256 digest (lowercase hex) of the
	// idempotency key of the key request that created the APIKey: a request
	// that repeats it gets the same key ID back, and no secret.
	IdempotencyKeyAnnotation = "hub.minimax.io/idempotency-key"
)

// IssuedKey is a key minted outside the controller, as the
// hub.minimax.io/issued-key annotation carries it.
type IssuedKey struct {
	// KeyID is the key's public ID.
	KeyID string `json:"keyID"`
	// Digest is the key's digest as status.digest holds it: "sha256:"
	// and 64 lowercase hex digits.
	Digest string `json:"digest"`
	// Trigger is the spec.rotation.trigger the key answers: empty for the
	// first key, the rotation ID for a rotation.
	Trigger string `json:"trigger,omitempty"`
}

var (
	issuedKeyID     = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
	issuedKeyDigest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ParseIssuedKey reads the hub.minimax.io/issued-key annotation of an
// APIKey. ok is false when there is none; err says what is wrong with one
// that is there.
func ParseIssuedKey(annotations map[string]string) (key IssuedKey, ok bool, err error) {
	raw, ok := annotations[IssuedKeyAnnotation]
	if !ok {
		return IssuedKey{}, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &key); err != nil {
		return IssuedKey{}, true, fmt.Errorf("not the JSON of a key ID, a digest and a trigger: %w", err)
	}
	switch {
	case !issuedKeyID.MatchString(key.KeyID):
		return IssuedKey{}, true, fmt.Errorf("keyID %q is not a key ID", key.KeyID)
	case !issuedKeyDigest.MatchString(key.Digest):
		return IssuedKey{}, true, fmt.Errorf("digest is not sha256: and 64 lowercase hex digits")
	}
	return key, true, nil
}

// String is the annotation's value.
func (k IssuedKey) String() string {
	b, _ := json.Marshal(k)
	return string(b)
}

// RotationTrigger is the key's spec.rotation.trigger, or "" without one.
func (k *APIKey) RotationTrigger() string {
	if k.Spec.Rotation != nil {
		return k.Spec.Rotation.Trigger
	}
	return ""
}

// DeliveryMode is the key's delivery mode: Secret unless spec.delivery.mode
// says None.
func (k *APIKey) DeliveryMode() KeyDeliveryMode {
	if k.Spec.Delivery != nil && k.Spec.Delivery.Mode == DeliveryNone {
		return DeliveryNone
	}
	return DeliverySecret
}
