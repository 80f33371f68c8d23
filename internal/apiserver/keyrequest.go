package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
	"github.com/minimax/platform-hub/internal/keys"
)

// keyRequests serves KeyRequests: create-only; each creates an APIKey as
// the caller and answers with its key, once. Keys of delivery None are
// minted here and only their digest leaves (hub.minimax.io/issued-key);
// keys of delivery Secret are minted by the controller into the Secret, as
// for any APIKey, and read back from it for the answer.
type keyRequests struct {
	keyIssuer
}

var (
	_ rest.Creater              = (*keyRequests)(nil) //nolint:misspell // the interface's name
	_ rest.Scoper               = (*keyRequests)(nil)
	_ rest.SingularNameProvider = (*keyRequests)(nil)
)

func (r *keyRequests) New() runtime.Object     { return &mgmtv1alpha1.KeyRequest{} }
func (r *keyRequests) Destroy()                {}
func (r *keyRequests) NamespaceScoped() bool   { return true }
func (r *keyRequests) GetSingularName() string { return "keyrequest" }

var keyRequestKind = mgmtv1alpha1.SchemeGroupVersion.WithKind("KeyRequest").GroupKind()

// maxIdempotencyKey is the longest idempotency key, as Stripe's.
const maxIdempotencyKey = 255

// Create creates the APIKey and answers with its key. A request that
// repeats an idempotency key answers with the first one's key ID and no
// key; one whose name is taken by another key is refused (409).
func (r *keyRequests) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc,
	_ *metav1.CreateOptions) (runtime.Object, error) {
	req, ok := obj.(*mgmtv1alpha1.KeyRequest)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a KeyRequest: %T", obj))
	}
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	req.Namespace, _ = genericapirequest.NamespaceFrom(ctx)
	if errs := validateKeyRequest(req); len(errs) > 0 {
		return nil, apierrors.NewInvalid(keyRequestKind, req.Name, errs)
	}
	idempotency := ""
	if req.Spec.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(req.Spec.IdempotencyKey))
		idempotency = hex.EncodeToString(sum[:])
		if req.Name == "" {
			// A name the idempotency key decides, so that two requests
			// racing with it meet on one APIKey.
			req.Name = req.GenerateName + idempotency[:10]
		}
	}
	owner, err := r.owner(ctx, req.Spec.Owner)
	if err != nil {
		return nil, err
	}
	as, err := r.actAs.client(ctx)
	if err != nil {
		return nil, err
	}
	key, minted, err := newAPIKey(req, owner, idempotency)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if err := as.Create(ctx, key); err != nil {
		if apierrors.IsAlreadyExists(err) && idempotency != "" {
			return r.repeated(ctx, as, req, idempotency)
		}
		return nil, asCaller(err, "create", "apikeys")
	}
	req.Name, req.GenerateName = key.Name, ""
	req.CreationTimestamp = key.CreationTimestamp
	req.Status = mgmtv1alpha1.KeyRequestStatus{APIKeyName: key.Name}
	return r.answer(ctx, req, key, minted)
}

// newAPIKey is the APIKey a request asks for, and for delivery None the key
// minted for it, whose ID and digest it carries.
func newAPIKey(req *mgmtv1alpha1.KeyRequest, owner, idempotency string) (*hubv1.APIKey, keys.Key, error) {
	key := &hubv1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name, GenerateName: req.GenerateName,
			Annotations: map[string]string{}},
		Spec: hubv1.APIKeySpec{Label: req.Spec.Label, Scope: hubv1.APIKeyScope(req.Spec.Scope), Owner: owner},
	}
	if req.Spec.ExpiresAfter != "" {
		lifetime := hubv1.KeyLifetime(req.Spec.ExpiresAfter)
		key.Spec.ExpiresAfter = &lifetime
	}
	if idempotency != "" {
		key.Annotations[hubv1.IdempotencyKeyAnnotation] = idempotency
	}
	if req.Spec.Delivery == mgmtv1alpha1.DeliverySecret {
		return key, keys.Key{}, nil
	}
	minted, err := keys.New()
	if err != nil {
		return nil, keys.Key{}, err
	}
	key.Spec.Delivery = &hubv1.KeyDelivery{Mode: hubv1.DeliveryNone}
	key.Annotations[hubv1.IssuedKeyAnnotation] = hubv1.IssuedKey{KeyID: minted.ID(), Digest: minted.Digest()}.String()
	return key, minted, nil
}

// answer fills the request's status once the controller has recorded the
// key: the minted key for delivery None, else the key read from the
// Secret.
func (r *keyRequests) answer(ctx context.Context, req *mgmtv1alpha1.KeyRequest, key *hubv1.APIKey, minted keys.Key) (runtime.Object, error) {
	issued, err := r.waitForKey(ctx, key, func(k *hubv1.APIKey) bool { return k.Status.Revision >= 1 })
	if !minted.IsZero() {
		// The answer holds the key whether or not the controller has
		// recorded it yet: it is the only place the key will ever be.
		req.Status.KeyID, req.Status.Key = minted.ID(), minted.Reveal()
		if err == nil && issued.Status.KeyID == minted.ID() {
			req.Status.ExpiresAt = issued.Status.ExpiresAt
		}
		return req, nil
	}
	if err != nil {
		return nil, notIssuedYet(key, err)
	}
	plaintext, err := r.secretKey(ctx, issued)
	if err != nil {
		return nil, err
	}
	req.Status.KeyID, req.Status.Key = issued.Status.KeyID, plaintext
	req.Status.SecretName, req.Status.ExpiresAt = issued.Status.SecretName, issued.Status.ExpiresAt
	return req, nil
}

// repeated answers a request whose name is taken: with the key ID when the
// APIKey there was made with the same idempotency key, else 409.
func (r *keyRequests) repeated(ctx context.Context, as client.Client, req *mgmtv1alpha1.KeyRequest,
	idempotency string) (runtime.Object, error) {
	key := &hubv1.APIKey{}
	if err := as.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, key); err != nil {
		return nil, asCaller(err, "get", "apikeys")
	}
	if key.Annotations[hubv1.IdempotencyKeyAnnotation] != idempotency {
		return nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: hubv1.GroupVersion.Group, Resource: "apikeys"}, req.Name)
	}
	issued, err := r.waitForKey(ctx, key, func(k *hubv1.APIKey) bool { return k.Status.Revision >= 1 })
	if err != nil {
		return nil, notIssuedYet(key, err)
	}
	req.CreationTimestamp = key.CreationTimestamp
	req.Status = mgmtv1alpha1.KeyRequestStatus{APIKeyName: key.Name, KeyID: issued.Status.KeyID, Repeated: true,
		ExpiresAt: issued.Status.ExpiresAt}
	if issued.DeliveryMode() == hubv1.DeliverySecret {
		req.Status.SecretName = issued.Status.SecretName
	}
	return req, nil
}

// validateKeyRequest checks what the APIKey's own rules do not: the name,
// the idempotency key and the delivery.
func validateKeyRequest(req *mgmtv1alpha1.KeyRequest) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if req.Namespace == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "namespace"), "the namespace of the project the key is for"))
	}
	if req.Name == "" && req.GenerateName == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"),
			"the name of the APIKey to create (or metadata.generateName)"))
	}
	if n := len(req.Spec.IdempotencyKey); n > maxIdempotencyKey {
		errs = append(errs, field.TooLong(spec.Child("idempotencyKey"), n, maxIdempotencyKey))
	}
	switch req.Spec.Delivery {
	case "", mgmtv1alpha1.DeliveryNone, mgmtv1alpha1.DeliverySecret:
	default:
		errs = append(errs, field.NotSupported(spec.Child("delivery"), req.Spec.Delivery,
			[]mgmtv1alpha1.KeyDelivery{mgmtv1alpha1.DeliveryNone, mgmtv1alpha1.DeliverySecret}))
	}
	return errs
}

// owner is the key's owner: the one asked for, else the caller when the
// caller is a member.
func (r *keyRequests) owner(ctx context.Context, asked string) (string, error) {
	if asked != "" {
		return asked, nil
	}
	u, _ := genericapirequest.UserFrom(ctx)
	prefix := ""
	org := &hubv1.Organization{}
	if err := r.cache.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err == nil {
		prefix = org.Spec.Security.UsernamePrefix
	}
	if email, ok := strings.CutPrefix(u.GetName(), prefix); ok {
		members := &hubv1.MemberList{}
		if err := r.cache.List(ctx, members, client.MatchingFields{memberEmailIndex: hubv1.EmailKey(email)}); err != nil {
			return "", apierrors.NewInternalError(err)
		}
		if len(members.Items) == 1 {
			return members.Items[0].Spec.Email, nil
		}
	}
	return "", apierrors.NewInvalid(keyRequestKind, "", field.ErrorList{field.Required(field.NewPath("spec", "owner"),
		fmt.Sprintf("you (%s) are no member of the organization; name the email of the member who owns the key", u.GetName()))})
}

// keyIssuer is what key and rotation requests share: the cache, a client
// acting as the caller, and the management API's own reader of key
// Secrets.
type keyIssuer struct {
	cache client.Reader
	actAs *actAs
	// secrets reads key Secrets from kube-apiserver, as the management
	// API (hub-apiserver-secret-reader, bound in project namespaces).
	secrets client.Reader
	// wait bounds how long an answer waits for the controller to issue.
	wait time.Duration
}

// waitForKey waits until the cache's copy of key satisfies done, for at most
// r.wait.
func (r *keyIssuer) waitForKey(ctx context.Context, key *hubv1.APIKey, done func(*hubv1.APIKey) bool) (*hubv1.APIKey, error) {
	ctx, cancel := context.WithTimeout(ctx, r.wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		got := &hubv1.APIKey{}
		err := r.cache.Get(ctx, client.ObjectKeyFromObject(key), got)
		switch {
		case err == nil && got.UID == key.UID && done(got):
			return got, nil
		case err != nil && !apierrors.IsNotFound(err):
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// secretKey reads the current key from the key's Secret, checking that the
// Secret holds the key status names (the revision the controller wrote).
func (r *keyIssuer) secretKey(ctx context.Context, key *hubv1.APIKey) (string, error) {
	secret := &corev1.Secret{}
	if err := r.secrets.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Status.SecretName}, secret); err != nil {
		return "", apierrors.NewInternalError(fmt.Errorf("reading the key from Secret %q: %w", key.Status.SecretName, err))
	}
	plaintext := string(secret.Data[hubv1.SecretKeyCurrent])
	parsed, err := keys.Parse(plaintext)
	if err != nil || parsed.ID() != key.Status.KeyID {
		return "", apierrors.NewConflict(mgmtv1alpha1.Resource("keyrequests"), key.Name,
			fmt.Errorf("the Secret %q no longer holds key %s (it was rotated meanwhile); the key is in the Secret", key.Status.SecretName, key.Status.KeyID))
	}
	return plaintext, nil
}

// notIssuedYet answers a request whose APIKey exists but whose key the
// controller has not issued in time: the caller learns where the key
// will be, and no second key is made by a retry with the same
// idempotency key.
func notIssuedYet(key *hubv1.APIKey, cause error) error {
	return apierrors.NewTimeoutError(fmt.Sprintf("APIKey %s/%s was created, but the hub's controller did not issue its key in time (%v); "+
		"with delivery Secret the key will be in its Secret; see kubectl describe apikey %s -n %s", key.Namespace, key.Name, cause,
		key.Name, key.Namespace), 5)
}

// asCaller returns an error of kube-apiserver, met writing or reading a hub
// resource as the caller with verb, as the management API's answer: RBAC's
// 403 gains the hub role needed (kube-apiserver names none); other status
// errors (Invalid with the APIKey's field paths, AlreadyExists, NotFound)
// go as they are, anything else as an internal error.
func asCaller(err error, verb, resource string) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return apierrors.NewInternalError(err)
	}
	s := status.Status()
	role, ok := access.LeastRole(hubv1.GroupVersion.Group, resource, verb)
	if s.Reason != metav1.StatusReasonForbidden || !ok || !strings.Contains(s.Message, "cannot "+verb+" resource") {
		return err
	}
	s.Message += ": " + roleNeeded(role)
	return &apierrors.StatusError{ErrStatus: s}
}
