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

// SecretAccess is a hub component that needs Secrets in project namespaces
// and holds no Secret permission across the cluster: each project
// namespace gets a RoleBinding that grants its ServiceAccount ClusterRole
// there, and nowhere else. The manager needs the key Secrets' permissions
// (hub-manager-secrets in config/rbac); the usage server reads webhook
// signing secrets (hub-server-secret-reader in config/server); the management
// API reads the key Secrets its key requests answer with
// (hub-apiserver-secret-reader in config/apiserver).
type SecretAccess struct {
	// ServiceAccount is the component's ServiceAccount; empty grants
	// nothing.
	ServiceAccount types.NamespacedName
	// ClusterRole is what the binding grants.
	ClusterRole string
}

// The RoleBindings in each project namespace.
const (
	managerSecretsBinding   = "platform-hub:manager-secrets"
	serverSecretsBinding    = "platform-hub:server-secrets"
	apiserverSecretsBinding = "platform-hub:apiserver-secrets"
)

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=update;delete,resourceNames=platform-hub:manager-secrets;platform-hub:server-secrets;platform-hub:apiserver-secrets
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=hub-manager-secrets;hub-server-secret-reader;hub-apiserver-secret-reader

// reconcileSecretAccess binds the manager's, the server's and the
// management API's Secret roles
// in the project's namespace (the namespace owns the bindings, so they go
// with it), then starts the namespace's key Secret cache.
func (r *ProjectReconciler) reconcileSecretAccess(ctx context.Context, s *projectScope) error {
	if s.namespace == nil {
		return nil
	}
	for _, grant := range []struct {
		name   string
		access SecretAccess
	}{{managerSecretsBinding, r.ManagerAccess}, {serverSecretsBinding, r.ServerAccess}, {apiserverSecretsBinding, r.APIServerAccess}} {
		if grant.access.ServiceAccount.Name == "" {
			continue
		}
		if err := r.bindSecretRole(ctx, s, grant.name, grant.access); err != nil {
			return err
		}
	}
	if r.Secrets == nil {
		return nil
	}
	return r.Secrets.Ensure(ctx, s.namespace.Name)
}

func (r *ProjectReconciler) bindSecretRole(ctx context.Context, s *projectScope, name string, access SecretAccess) error {
	want := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace.Name, Name: name,
			Labels: map[string]string{hubv1.ProjectLabel: s.project.Name}},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: access.ClusterRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: access.ServiceAccount.Namespace,
			Name: access.ServiceAccount.Name}},
	}
	have := &rbacv1.RoleBinding{}
	// Read past the cache, which holds only the bindings of people's roles.
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, want, client.FieldOwner(fieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("granting %s Secrets in %q: %w", access.ServiceAccount, s.namespace.Name, err)
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
