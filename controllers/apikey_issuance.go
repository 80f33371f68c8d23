package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/keys"
)

const (
	// defaultOverlap is how long the previous key stays valid after a rotation.
	defaultOverlap = 24 * time.Hour
	// Issuance retries back off from issuanceBackoffBase, doubling up to
	// issuanceBackoffMax, counted across restarts through status.
	issuanceBackoffBase = 5 * time.Second
	issuanceBackoffMax  = 10 * time.Minute
)

// readSecret finds the key's Secret in its namespace's cache, which holds
// only Secrets the hub labelled. Someone else's Secret of the same name
// shows up when creating ours fails (see createSecret), so the common path
// costs no read from the API server.
func (r *APIKeyReconciler) readSecret(ctx context.Context, s *apiKeyScope) error {
	name := secretName(s.key)
	s.key.Status.SecretName = name
	secret := &corev1.Secret{}
	err := r.Secrets.Get(ctx, client.ObjectKey{Namespace: s.key.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading Secret %q: %w", name, err)
	case !metav1.IsControlledBy(secret, s.key):
		s.setSecretConflict()
		return nil
	}
	s.secret = secret
	return nil
}

// createSecret creates the key's Secret. When the name is taken, it tells a
// Secret of ours that the cache has not seen yet (retry) from someone
// else's, which the hub never overwrites (stall).
func (r *APIKeyReconciler) createSecret(ctx context.Context, s *apiKeyScope, secret *corev1.Secret) error {
	err := r.Create(ctx, secret, client.FieldOwner(fieldOwner))
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := &corev1.Secret{}
	if getErr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), existing); getErr != nil {
		return errors.Join(err, getErr)
	}
	if !metav1.IsControlledBy(existing, s.key) {
		s.setSecretConflict()
		return errSecretConflict
	}
	return err
}

// errSecretConflict stops issuance: the Secret's name is someone else's.
var errSecretConflict = errors.New("secret name taken")

func (s *apiKeyScope) setSecretConflict() {
	s.setStalled(hubv1.SecretConflictReason, fmt.Sprintf("Secret %q exists and does not belong to this APIKey; "+
		"the hub never overwrites it: delete that Secret, or recreate this APIKey with another spec.secretTemplate.name", secretName(s.key)))
}

// reconcileIssuance issues the first key, and a new one on rotation: when
// spec.rotation.trigger changes, when spec.rotation.renewBefore is reached,
// or when the Secret was deleted (its key is lost; the old digest keeps
// working for the overlap window so clients that read it can move on).
func (r *APIKeyReconciler) reconcileIssuance(ctx context.Context, s *apiKeyScope) error {
	if s.conflict() {
		return nil
	}
	if s.key.DeliveryMode() == hubv1.DeliveryNone {
		takeIssuedKey(s)
		return nil
	}
	// A key already written for the next revision is adopted first, whatever
	// else is due: it may have reached clients, and must not be lost.
	next := s.key.Status.Revision + 1
	if adoptIssuedKey(s, next) {
		return nil
	}
	reason, due := issuanceDue(s)
	if !due {
		return nil
	}
	if wait := s.backoffRemaining(); wait > 0 {
		s.requeueIn(wait)
		return nil
	}

	key, err := keys.New()
	if err != nil {
		return err
	}
	if err := r.writeKey(ctx, s, key, next); err != nil {
		if errors.Is(err, errSecretConflict) {
			return nil
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			return err // someone wrote meanwhile: read again and retry now
		}
		// The error may quote what was sent (an admission webhook might);
		// it goes to status and events only with keys redacted.
		s.recordIssuanceFailure(errors.New(keys.Redact(err.Error())))
		return nil // retried after the backoff recorded in status
	}
	s.recordIssued(key.ID(), key.Digest(), next, s.now, reason)
	if at := s.renewAt(); at != nil {
		s.requeueAtTime(*at) // the new key's renewal: nothing else would wake it
	}
	return nil
}

// takeIssuedKey records, for a key of delivery mode None, the key the
// management API minted: the first one, and the one of each rotation whose
// trigger the hub.minimax.io/issued-key annotation answers. The controller
// never mints such a key itself, for it could show it to no one; a trigger
// changed by other means waits (Issuing) while the current key works on.
func takeIssuedKey(s *apiKeyScope) {
	status := &s.key.Status
	trigger := s.key.RotationTrigger()
	if status.Revision > 0 && trigger == status.ObservedRotationTrigger {
		return
	}
	issued, ok, err := hubv1.ParseIssuedKey(s.key.Annotations)
	switch {
	case err != nil:
		s.awaitingKey = fmt.Sprintf("annotation %s is unusable (%v); create a rotation request for this key", hubv1.IssuedKeyAnnotation, err)
		return
	case !ok || issued.Trigger != trigger:
		s.awaitingKey = fmt.Sprintf("spec.rotation.trigger is %q, but a key of delivery mode None gets a new key only "+
			"from a rotation request of the management API, which shows it once; create one for this key "+
			"(docs/management-api.md)", trigger)
		return
	case status.Revision > 0 && issued.KeyID == status.KeyID:
		// The annotation still names the current key: the trigger moved
		// without a new one.
		s.awaitingKey = fmt.Sprintf("spec.rotation.trigger changed to %q without a new key; create a rotation request for this key", trigger)
		return
	}
	reason := hubv1.KeyIssuedReason
	if status.Revision > 0 {
		reason = "rotation requested through the management API"
	}
	s.recordIssued(issued.KeyID, issued.Digest, status.Revision+1, s.now, reason)
}

// issuanceDue says whether a new key is needed now, and why.
func issuanceDue(s *apiKeyScope) (reason string, due bool) {
	status := &s.key.Status
	trigger := s.key.RotationTrigger()
	switch {
	case status.Revision == 0:
		return hubv1.KeyIssuedReason, true
	case trigger != status.ObservedRotationTrigger:
		return "rotation requested (spec.rotation.trigger changed)", true
	case s.expired():
		return "", false
	case s.secret == nil || s.secret.Annotations[hubv1.RevisionAnnotation] != strconv.FormatInt(status.Revision, 10):
		return "the key's Secret was deleted or replaced", true
	case s.renewAt() != nil && !s.now.Before(*s.renewAt()):
		return "automatic rotation before expiry (spec.rotation.renewBefore)", true
	}
	if at := s.renewAt(); at != nil {
		s.requeueAtTime(*at)
	}
	return "", false
}

// adoptIssuedKey takes over a key already written for revision next: the
// previous reconcile wrote the Secret and stopped before writing status.
func adoptIssuedKey(s *apiKeyScope, next int64) bool {
	if s.secret == nil || s.secret.Annotations[hubv1.RevisionAnnotation] != strconv.FormatInt(next, 10) {
		return false
	}
	key, err := keys.Parse(string(s.secret.Data[hubv1.SecretKeyCurrent]))
	if err != nil {
		return false // unusable: a new key is issued over it
	}
	// The issue time comes from an annotation anyone with access to the
	// Secret could edit; it is kept between the current key's and now.
	issuedAt, err := time.Parse(time.RFC3339, s.secret.Annotations[hubv1.IssuedAtAnnotation])
	if err != nil || issuedAt.After(s.now) {
		issuedAt = s.now
	}
	if created := s.key.Status.CreatedAt; created != nil && issuedAt.Before(created.Time) {
		issuedAt = created.Time
	}
	s.recordIssued(key.ID(), key.Digest(), next, issuedAt, "a key written before a restart was adopted")
	return true
}

// writeKey writes a new key into the Secret, keeping the current key as the
// previous one (when the Secret still holds it), in one write.
func (r *APIKeyReconciler) writeKey(ctx context.Context, s *apiKeyScope, key keys.Key, revision int64) error {
	secret := s.secret
	if secret == nil {
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName(s.key), Namespace: s.key.Namespace}}
		if err := controllerutil.SetControllerReference(s.key, secret, r.Scheme()); err != nil {
			return err
		}
	} else {
		secret = secret.DeepCopy()
	}

	previous := []byte(nil)
	if s.secret != nil && s.key.Status.Revision > 0 && !s.expired() &&
		s.secret.Annotations[hubv1.RevisionAnnotation] == strconv.FormatInt(s.key.Status.Revision, 10) {
		previous = s.secret.Data[hubv1.SecretKeyCurrent]
	}
	secret.Data = map[string][]byte{hubv1.SecretKeyCurrent: []byte(key.Reveal())}
	if previous != nil {
		secret.Data[hubv1.SecretKeyPrevious] = previous
	}
	applySecretTemplate(s.key, secret, key.ID())
	secret.Annotations[hubv1.RevisionAnnotation] = strconv.FormatInt(revision, 10)
	secret.Annotations[hubv1.IssuedAtAnnotation] = s.now.UTC().Format(time.RFC3339)

	var err error
	if s.secret == nil {
		err = r.createSecret(ctx, s, secret)
	} else {
		// Update carries the resource version read: a concurrent writer makes
		// it fail rather than be overwritten.
		err = r.Update(ctx, secret, client.FieldOwner(fieldOwner))
	}
	if errors.Is(err, errSecretConflict) {
		return err
	}
	if err != nil {
		return fmt.Errorf("writing the key into Secret %q: %w", secret.Name, err)
	}
	s.secret = secret
	return nil
}

// reconcileSecret keeps the Secret's labels, annotations and aliases in line
// with the template, without touching the keys.
func (r *APIKeyReconciler) reconcileSecret(ctx context.Context, s *apiKeyScope) error {
	if s.secret == nil || s.expired() || s.conflict() {
		return nil
	}
	desired := s.secret.DeepCopy()
	applySecretTemplate(s.key, desired, s.key.Status.KeyID)
	if maps.Equal(desired.Labels, s.secret.Labels) && maps.Equal(desired.Annotations, s.secret.Annotations) &&
		sameData(desired.Data, s.secret.Data) {
		return nil
	}
	if err := r.Update(ctx, desired, client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("updating Secret %q: %w", desired.Name, err)
	}
	s.secret = desired
	return nil
}

// applySecretTemplate sets the Secret's type, labels, annotations and alias
// data keys from the APIKey. The hub's own labels win over the template's.
func applySecretTemplate(key *hubv1.APIKey, secret *corev1.Secret, keyID string) {
	tmpl := key.Spec.SecretTemplate
	if tmpl == nil {
		tmpl = &hubv1.SecretTemplate{}
	}
	secret.Type = corev1.SecretTypeOpaque
	keep := map[string]string{}
	for _, k := range []string{hubv1.RevisionAnnotation, hubv1.IssuedAtAnnotation} {
		if v, ok := secret.Annotations[k]; ok {
			keep[k] = v
		}
	}
	secret.Annotations = maps.Clone(tmpl.Annotations)
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	maps.Copy(secret.Annotations, keep)

	secret.Labels = maps.Clone(tmpl.Labels)
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	maps.Copy(secret.Labels, map[string]string{
		hubv1.ProjectLabel:             key.Namespace,
		hubv1.APIKeyLabel:              key.Name,
		hubv1.KeyIDLabel:               keyID,
		hubv1.ScopeLabel:               string(key.Spec.Scope),
		"app.kubernetes.io/managed-by": "platform-hub",
	})

	data := map[string][]byte{hubv1.SecretKeyCurrent: secret.Data[hubv1.SecretKeyCurrent]}
	if prev, ok := secret.Data[hubv1.SecretKeyPrevious]; ok {
		data[hubv1.SecretKeyPrevious] = prev
	}
	for _, alias := range tmpl.Aliases {
		data[alias] = data[hubv1.SecretKeyCurrent]
	}
	secret.Data = data
}

func sameData(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

func secretName(key *hubv1.APIKey) string {
	if key.Spec.SecretTemplate != nil && key.Spec.SecretTemplate.Name != "" {
		return key.Spec.SecretTemplate.Name
	}
	return key.Name
}

// recordIssued records a newly issued key in status. The key it replaces, if
// any and still valid, stays valid for the overlap window.
func (s *apiKeyScope) recordIssued(keyID, digest string, revision int64, issuedAt time.Time, reason string) {
	status := &s.key.Status
	if status.PreviousKey != nil {
		// A rotation during an overlap: the older previous key stops now,
		// the one being replaced takes its place.
		s.retire(issuedAt)
	}
	if status.KeyID != "" && status.KeyID != keyID && !s.expired() {
		// The previous key never outlives its own expiry.
		validUntil := issuedAt.Add(s.overlap())
		if status.ExpiresAt != nil && status.ExpiresAt.Before(&metav1.Time{Time: validUntil}) {
			validUntil = status.ExpiresAt.Time
		}
		status.PreviousKey = &hubv1.PreviousKey{KeyID: status.KeyID, Digest: status.Digest, ValidUntil: metav1.NewTime(validUntil),
			RotationTrigger: status.ObservedRotationTrigger}
	}
	status.KeyID, status.Digest, status.Revision = keyID, digest, revision
	status.CreatedAt = ptrTime(issuedAt)
	status.Lifetime, status.RequestedLifetime = s.lifetime, requestedLifetime(s.key)
	status.ExpiresAt = expiryOf(status)
	if s.key.Spec.Rotation != nil {
		status.ObservedRotationTrigger = s.key.Spec.Rotation.Trigger
	} else {
		status.ObservedRotationTrigger = ""
	}
	status.FailedIssuanceAttempts, status.LastFailureTime = 0, nil
	s.issuedReason = reason
}

func (s *apiKeyScope) recordIssuanceFailure(err error) {
	status := &s.key.Status
	status.FailedIssuanceAttempts++
	status.LastFailureTime = ptrTime(s.now)
	s.issuanceError = err
	s.requeueIn(s.backoffRemaining())
}

// backoffRemaining is how long to wait before the next issuance attempt.
func (s *apiKeyScope) backoffRemaining() time.Duration {
	status := &s.key.Status
	if status.FailedIssuanceAttempts == 0 || status.LastFailureTime == nil {
		return 0
	}
	exp := math.Min(float64(status.FailedIssuanceAttempts-1), 20)
	backoff := time.Duration(math.Min(float64(issuanceBackoffBase)*math.Pow(2, exp), float64(issuanceBackoffMax)))
	return status.LastFailureTime.Add(backoff).Sub(s.now)
}

func (s *apiKeyScope) overlap() time.Duration {
	if r := s.key.Spec.Rotation; r != nil && r.Overlap != nil {
		return r.Overlap.Duration
	}
	return defaultOverlap
}

// renewAt is when automatic rotation is due, or nil when it is off.
func (s *apiKeyScope) renewAt() *time.Time {
	status := &s.key.Status
	before, _, ok := s.renewBefore()
	if !ok {
		return nil
	}
	at := status.ExpiresAt.Add(-before)
	return &at
}

// renewBefore is how long before expiry the current key renews: the
// spec's renewBefore when it leaves the key at least a third of its
// lifetime and at least its rotation overlap before renewing, else a third
// of the lifetime, which cert-manager uses for a renewBefore it cannot
// honour (adjusted is then true). A renewBefore near the lifetime would
// otherwise renew seconds after issuance, over and over, each renewal
// cutting the previous key's overlap short. ok is false when automatic
// rotation is off or the key never expires.
func (s *apiKeyScope) renewBefore() (before time.Duration, adjusted, ok bool) {
	r, status := s.key.Spec.Rotation, &s.key.Status
	if r == nil || r.RenewBefore == nil || status.ExpiresAt == nil || status.CreatedAt == nil {
		return 0, false, false
	}
	lifetime := status.ExpiresAt.Sub(status.CreatedAt.Time)
	if before = r.RenewBefore.Duration; before > maxRenewBefore(lifetime, s.overlap()) {
		return lifetime / 3, true, true
	}
	return before, false, true
}

// maxRenewBefore is the longest renewBefore honoured for a key of lifetime
// with the given rotation overlap: renewal no sooner than a third of the
// lifetime, and no sooner than the overlap after issuance.
func maxRenewBefore(lifetime, overlap time.Duration) time.Duration {
	return min(lifetime*2/3, lifetime-overlap)
}

// reconcileLifetime applies a changed spec.expiresAfter to the current key:
// its expiry moves to its issue time plus the new lifetime, within the
// policy. A changed policy (default or maximum) applies from the next key
// on: a key the new maximum would not allow is reported, not cut short,
// since cutting it could stop it at once.
func (r *APIKeyReconciler) reconcileLifetime(_ context.Context, s *apiKeyScope) error {
	status := &s.key.Status
	if status.Revision == 0 || status.CreatedAt == nil {
		return nil
	}
	requested := requestedLifetime(s.key)
	switch {
	case status.RequestedLifetime == "" && requested == status.Lifetime:
		// A key issued before requestedLifetime was kept: what it asked
		// for is what it has.
		status.RequestedLifetime = requested
	case requested != status.RequestedLifetime:
		// The spec asks for another lifetime: the current key gets it,
		// within the policy now in force.
		status.RequestedLifetime = requested
		if requested != "" {
			status.Lifetime = s.policy.IssuedLifetime(&requested)
		}
	}
	if status.Lifetime == "" {
		status.Lifetime = s.lifetime
	}
	status.ExpiresAt = expiryOf(status)
	return nil
}

// requestedLifetime is the key's spec.expiresAfter, or "" when it asks for
// none.
func requestedLifetime(key *hubv1.APIKey) hubv1.KeyLifetime {
	if key.Spec.ExpiresAfter == nil {
		return ""
	}
	return *key.Spec.ExpiresAfter
}

// expiryOf is when a key issued at status.createdAt with status.lifetime
// expires; nil for keys that never expire.
func expiryOf(status *hubv1.APIKeyStatus) *metav1.Time {
	d, ok := status.Lifetime.Duration()
	if !ok || status.CreatedAt == nil {
		return nil
	}
	return ptrTime(status.CreatedAt.Add(d))
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
