package controllers

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// ServerAccess names who may read Secrets in project namespaces besides the
// manager: the usage server, which reads the signing secrets of the
// project's webhook NotificationChannels. It holds no Secret permission of
// its own: each project namespace gets a RoleBinding that grants it
// ClusterRole (get on Secrets) there and nowhere else.
type ServerAccess struct {
	// ServiceAccount is the server's ServiceAccount; empty grants nothing.
	ServiceAccount types.NamespacedName
	// ClusterRole grants get on Secrets (hub-server-secret-reader in
	// config/server).
	ClusterRole string
}

// serverAccessBinding is the name of the RoleBinding in each project
// namespace.
const serverAccessBinding = "platform-hub:server-secrets"

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=update;delete,resourceNames=platform-hub:server-secrets

// reconcileServerAccess keeps the RoleBinding that lets the usage server
// read Secrets in the project's namespace. The namespace owns it, so it
// goes with the namespace.
func (r *ProjectReconciler) reconcileServerAccess(ctx context.Context, s *projectScope) error {
	if s.namespace == nil || r.ServerAccess.ServiceAccount.Name == "" {
		return nil
	}
	want := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace.Name, Name: serverAccessBinding,
			Labels: map[string]string{hubv1.ProjectLabel: s.project.Name}},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.ServerAccess.ClusterRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: r.ServerAccess.ServiceAccount.Namespace,
			Name: r.ServerAccess.ServiceAccount.Name}},
	}
	have := &rbacv1.RoleBinding{}
	// Read past the cache, which holds only the bindings of people's roles.
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, want, client.FieldOwner(fieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("granting the usage server access to Secrets in %q: %w", s.namespace.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading RoleBinding %s/%s: %w", want.Namespace, want.Name, err)
	case have.RoleRef != want.RoleRef:
		// The role reference cannot change: the binding is made again.
		if err := r.Delete(ctx, have, client.Preconditions{UID: &have.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("replacing RoleBinding %s/%s: %w", want.Namespace, want.Name, err)
		}
		return r.Create(ctx, want, client.FieldOwner(fieldOwner))
	case !equality.Semantic.DeepEqual(have.Subjects, want.Subjects):
		have.Subjects = want.Subjects
		return r.Update(ctx, have, client.FieldOwner(fieldOwner))
	}
	return nil
}
