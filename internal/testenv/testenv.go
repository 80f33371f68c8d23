// Package testenv starts the hub for tests of the parts that sit on top of
// it (gateway, server): a local control plane with the CRDs and webhooks, and
// the manager with its controllers. Tests only; nothing in the hub's binaries
// imports it.
package testenv

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/operator"
	"github.com/minimax/platform-hub/internal/scheme"
)

// Env is a running control plane with the hub's manager.
type Env struct {
	Cluster   *devcluster.Cluster
	Client    client.Client
	Clientset *kubernetes.Clientset
	// Cache is the manager's informer cache.
	Cache cache.Cache

	stopManager func()
}

// Start starts the control plane and the manager, with clk as the manager's
// clock.
func Start(clk clock.PassiveClock) (_ *Env, err error) {
	crds, err := config.CRDs()
	if err != nil {
		return nil, err
	}
	hooks, err := config.ValidatingWebhooks()
	if err != nil {
		return nil, err
	}
	cluster, err := devcluster.Start(devcluster.Options{Scheme: scheme.New(), CRDs: crds, ValidatingWebhooks: hooks})
	if err != nil {
		return nil, err
	}
	e := &Env{Cluster: cluster}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	if e.Client, err = client.New(cluster.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return nil, err
	}
	if e.Clientset, err = kubernetes.NewForConfig(cluster.Config); err != nil {
		return nil, err
	}
	mgr, err := operator.NewManager(cluster.Config, operator.Options{
		MetricsAddr: "0", ProbeAddr: "0", Webhook: cluster.WebhookServerOptions(), Clock: clk,
	})
	if err != nil {
		return nil, err
	}
	e.Cache = mgr.GetCache()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The manager's own error at shutdown says nothing to a test.
		_ = mgr.Start(ctx)
	}()
	e.stopManager = func() {
		cancel()
		<-done
	}
	check := mgr.GetWebhookServer().StartedChecker()
	deadline := time.Now().Add(30 * time.Second)
	for check(nil) != nil {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("webhook server did not start: %w", check(nil))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e, nil
}

// Stop stops the manager and the control plane.
func (e *Env) Stop() {
	if e.stopManager != nil {
		e.stopManager()
	}
	_ = e.Cluster.Stop()
}

// ServiceAccountToken creates a ServiceAccount in a new namespace, binds it
// to the given rules, and returns a token for it.
func (e *Env) ServiceAccountToken(ctx context.Context, name string, rules ...rbacv1.PolicyRule) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sa-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}}
	if err := e.Client.Create(ctx, sa); err != nil {
		return "", err
	}
	if len(rules) > 0 {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns.Name + "-" + name}, Rules: rules}
		if err := e.Client.Create(ctx, role); err != nil {
			return "", err
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: name}},
		}
		if err := e.Client.Create(ctx, binding); err != nil {
			return "", err
		}
	}
	tr, err := e.Clientset.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](86400)}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}
