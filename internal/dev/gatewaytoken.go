package dev

import (
	"context"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/scheme"
)

// hubNamespace is where `hub dev` puts the hub's own objects, as an
// install does.
const hubNamespace = "hub-system"

// gatewayToken sets up the gateway's ServiceAccount with the right to post
// usage (as config/gateway does in a cluster) and returns a token source
// that asks for a fresh token before the last one expires.
func gatewayToken(ctx context.Context, cluster *devcluster.Cluster) (func() (string, error), error) {
	return serviceAccountToken(ctx, cluster.Config, "hub-gateway", "hub-usage-ingest", gateway.ServerRules()...)
}

// managerToken does the same for the manager, which posts the audit log (as
// config/rbac does).
func managerToken(ctx context.Context, cluster *devcluster.Cluster) (func() (string, error), error) {
	return serviceAccountToken(ctx, cluster.Config, "hub-manager", "hub-audit-writer",
		rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"auditevents"}, Verbs: []string{"create"}})
}

// apiserverToken does the same for the management API, which asks the
// usage server for reports (as config/apiserver does).
func apiserverToken(ctx context.Context, cluster *devcluster.Cluster) (func() (string, error), error) {
	return serviceAccountToken(ctx, cluster.Config, "hub-apiserver", "hub-usage-reports",
		rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usagereports"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usagerecords", "auditevents", "alerts"}, Verbs: []string{"list"}})
}

// serviceAccountToken sets up ServiceAccount account in the hub's namespace
// with ClusterRole role, which grants rules (on the hub's virtual
// resources), as the administrator cfg names, and returns a token source
// for it.
func serviceAccountToken(ctx context.Context, cfg *rest.Config, account, role string, rules ...rbacv1.PolicyRule) (func() (string, error), error) {
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: hubNamespace, Name: account}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules:      rules,
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: account + "-" + role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: hubNamespace, Name: account}},
		},
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	var mu sync.Mutex
	var token string
	var expires time.Time
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if token != "" && time.Until(expires) > 10*time.Minute {
			return token, nil
		}
		tr, err := cs.CoreV1().ServiceAccounts(hubNamespace).CreateToken(ctx, account,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}},
			metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		token, expires = tr.Status.Token, tr.Status.ExpirationTimestamp.Time
		return token, nil
	}, nil
}
