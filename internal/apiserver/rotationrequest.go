package apiserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/keys"
)

// rotationRequests serves RotationRequests: create-only; each sets the
// APIKey's spec.rotation.trigger to the rotation ID, as the caller, and
// answers with the new key, once. For a key of delivery None the new key
// is minted here and only its digest leaves, in the same write; for a key
// in a Secret the controller mints it there, and it is read back.
type rotationRequests struct {
	keyIssuer
}

var (
	_ rest.Creater              = (*rotationRequests)(nil) //nolint:misspell // the interface's name
	_ rest.Scoper               = (*rotationRequests)(nil)
	_ rest.SingularNameProvider = (*rotationRequests)(nil)
)

func (r *rotationRequests) New() runtime.Object     { return &mgmtv1alpha1.RotationRequest{} }
func (r *rotationRequests) Destroy()                {}
func (r *rotationRequests) NamespaceScoped() bool   { return true }
func (r *rotationRequests) GetSingularName() string { return "rotationrequest" }

var rotationRequestKind = mgmtv1alpha1.SchemeGroupVersion.WithKind("RotationRequest").GroupKind()

// rotationAttempts bounds the retries of a rotation that met a concurrent
// change of the APIKey.
const rotationAttempts = 3

// Create rotates the key and answers with the new one. A request that
// repeats a rotation ID gets the key ID that rotation made and no key: for
// the current key's rotation, once it is issued; for an earlier one that
// the key still remembers (previous and retired keys), at once, marked
// superseded.
func (r *rotationRequests) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc,
	_ *metav1.CreateOptions) (runtime.Object, error) {
	req, ok := obj.(*mgmtv1alpha1.RotationRequest)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a RotationRequest: %T", obj))
	}
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	req.Namespace, _ = genericapirequest.NamespaceFrom(ctx)
	if req.Spec.RotationID == "" {
		req.Spec.RotationID = req.Name
	}
	if errs := validateRotationRequest(req); len(errs) > 0 {
		return nil, apierrors.NewInvalid(rotationRequestKind, req.Name, errs)
	}
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		answer, err := r.rotate(ctx, as, req)
		if apierrors.IsConflict(err) && attempt < rotationAttempts {
			continue // the key changed since it was read: read it again
		}
		return answer, err
	}
}

// rotate reads the key, writes the rotation (unless it is a repeat) and
// answers.
func (r *rotationRequests) rotate(ctx context.Context, as client.Client, req *mgmtv1alpha1.RotationRequest) (runtime.Object, error) {
	id := req.Spec.RotationID
	key := &hubv1.APIKey{}
	if err := as.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Spec.APIKeyName}, key); err != nil {
		return nil, asCaller(err, "get", "apikeys")
	}
	path := field.NewPath("spec", "apiKeyName")
	switch {
	case key.Spec.Revoked:
		return nil, apierrors.NewInvalid(rotationRequestKind, req.Name, field.ErrorList{field.Invalid(path, key.Name,
			"the key is revoked, and a revoked key stays revoked; create a new key (a KeyRequest)")})
	case key.RotationTrigger() == id:
		return r.repeatedRotation(ctx, key, req)
	}
	if keyID, ok := issuedBy(key, id); ok {
		req.CreationTimestamp = metav1.Now()
		req.Status = mgmtv1alpha1.RotationRequestStatus{RotationID: id, KeyID: keyID, Repeated: true, Superseded: true}
		return req, nil
	}

	before := key.DeepCopy()
	if key.Spec.Rotation == nil {
		key.Spec.Rotation = &hubv1.RotationSpec{}
	}
	key.Spec.Rotation.Trigger = id
	var minted keys.Key
	if key.DeliveryMode() == hubv1.DeliveryNone {
		var err error
		if minted, err = keys.New(); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if key.Annotations == nil {
			key.Annotations = map[string]string{}
		}
		key.Annotations[hubv1.IssuedKeyAnnotation] = hubv1.IssuedKey{KeyID: minted.ID(), Digest: minted.Digest(), Trigger: id}.String()
	}
	// The patch carries the resource version read: a rotation racing
	// another change is retried, never merged into it.
	if err := as.Patch(ctx, key, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return nil, asCaller(err, "patch", "apikeys")
	}
	req.CreationTimestamp = metav1.Now()
	rotated, err := r.waitForKey(ctx, key, func(k *hubv1.APIKey) bool { return k.Status.ObservedRotationTrigger == id })
	if !minted.IsZero() {
		req.Status = mgmtv1alpha1.RotationRequestStatus{RotationID: id, KeyID: minted.ID(), Key: minted.Reveal()}
		if err == nil && rotated.Status.KeyID == minted.ID() {
			setRotated(&req.Status, rotated)
		}
		return req, nil
	}
	if err != nil {
		return nil, notIssuedYet(key, err)
	}
	plaintext, err := r.secretKey(ctx, rotated)
	if err != nil {
		return nil, err
	}
	req.Status = mgmtv1alpha1.RotationRequestStatus{RotationID: id, KeyID: rotated.Status.KeyID, Key: plaintext}
	setRotated(&req.Status, rotated)
	return req, nil
}

// repeatedRotation answers a rotation ID the key already has: the key ID
// of the key that rotation made, and no key.
func (r *rotationRequests) repeatedRotation(ctx context.Context, key *hubv1.APIKey, req *mgmtv1alpha1.RotationRequest) (runtime.Object, error) {
	id := req.Spec.RotationID
	rotated, err := r.waitForKey(ctx, key, func(k *hubv1.APIKey) bool { return k.Status.ObservedRotationTrigger == id })
	if err != nil {
		return nil, notIssuedYet(key, err)
	}
	req.CreationTimestamp = metav1.Now()
	req.Status = mgmtv1alpha1.RotationRequestStatus{RotationID: id, KeyID: rotated.Status.KeyID, Repeated: true}
	setRotated(&req.Status, rotated)
	return req, nil
}

// issuedBy finds the replaced key that the rotation id issued, among the
// key's previous and retired keys.
func issuedBy(key *hubv1.APIKey, id string) (keyID string, ok bool) {
	if prev := key.Status.PreviousKey; prev != nil && prev.RotationTrigger == id {
		return prev.KeyID, true
	}
	for _, r := range key.Status.RetiredKeys {
		if r.RotationTrigger == id {
			return r.KeyID, true
		}
	}
	return "", false
}

func setRotated(status *mgmtv1alpha1.RotationRequestStatus, key *hubv1.APIKey) {
	status.ExpiresAt = key.Status.ExpiresAt
	if prev := key.Status.PreviousKey; prev != nil {
		status.PreviousKeyID, status.PreviousKeyValidUntil = prev.KeyID, prev.ValidUntil.DeepCopy()
	}
}

func validateRotationRequest(req *mgmtv1alpha1.RotationRequest) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if req.Spec.APIKeyName == "" {
		errs = append(errs, field.Required(spec.Child("apiKeyName"), "the name of the APIKey to rotate"))
	}
	switch id := req.Spec.RotationID; {
	case id == "":
		errs = append(errs, field.Required(spec.Child("rotationID"), "a name for this rotation (or metadata.name), "+
			"such as 2026-12-01; repeating it repeats nothing"))
	case len(id) > validation.DNS1123LabelMaxLength:
		errs = append(errs, field.TooLong(spec.Child("rotationID"), len(id), validation.DNS1123LabelMaxLength))
	}
	return errs
}
