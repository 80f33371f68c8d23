package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// SecretCaches keeps the hub's key Secrets in one cache per project
// namespace, so that the manager needs Secret permissions in project
// namespaces only (granted there with each namespace) and never lists or
// watches Secrets across the cluster, which RBAC could not scope to the
// hub's Secrets. The Project controller starts a namespace's cache once the
// namespace is ready and stops it when the namespace goes; until its cache
// has synced, a namespace's Secrets are read from the API server.
//
// Each cache feeds the APIKey controller the changes of the Secrets it
// owns (a deleted or edited Secret is issued again).
type SecretCaches struct {
	config    *rest.Config
	client    client.Client
	apiReader client.Reader
	apikeys   controller.Controller

	started chan struct{} // closed once Start has ctx
	mu      sync.Mutex
	ctx     context.Context // the manager's, once started
	running map[string]*namespaceCache
}

type namespaceCache struct {
	cache  cache.Cache
	cancel context.CancelFunc
	synced bool
}

// newSecretCaches returns the caches of mgr's key Secrets.
func newSecretCaches(mgr ctrl.Manager) *SecretCaches {
	return &SecretCaches{config: mgr.GetConfig(), client: mgr.GetClient(), apiReader: mgr.GetAPIReader(),
		started: make(chan struct{}), running: map[string]*namespaceCache{}}
}

// Start keeps the caches until ctx ends; the manager runs it on the leader,
// with the controllers that read from it.
func (c *SecretCaches) Start(ctx context.Context) error {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	close(c.started)
	<-ctx.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	for ns, nc := range c.running {
		nc.cancel()
		delete(c.running, ns)
	}
	return nil
}

// Ensure starts the cache of namespace's key Secrets, if it is not running,
// and waits for it to sync (and, first, for Start: the controllers that
// call it may start before it).
func (c *SecretCaches) Ensure(ctx context.Context, namespace string) error {
	select {
	case <-c.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	if c.running[namespace] != nil {
		c.mu.Unlock()
		return nil
	}
	hubSecrets, err := labels.NewRequirement(hubv1.APIKeyLabel, selection.Exists, nil)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	nsCache, err := cache.New(c.config, cache.Options{
		Scheme: c.client.Scheme(), Mapper: c.client.RESTMapper(),
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
		ByObject:          map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: labels.NewSelector().Add(*hubSecrets)}},
	})
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("creating the Secret cache of namespace %q: %w", namespace, err)
	}
	cacheCtx, cancel := context.WithCancel(c.ctx)
	nc := &namespaceCache{cache: nsCache, cancel: cancel}
	c.running[namespace] = nc
	c.mu.Unlock()

	go func() { _ = nsCache.Start(cacheCtx) }()
	if c.apikeys != nil {
		// The controller creates the Secrets itself; their later changes
		// and deletion by others are what it must see.
		src := source.Kind(nsCache, &corev1.Secret{},
			handler.TypedEnqueueRequestForOwner[*corev1.Secret](c.client.Scheme(), c.client.RESTMapper(), &hubv1.APIKey{},
				handler.OnlyControllerOwner()),
			predicate.TypedFuncs[*corev1.Secret]{CreateFunc: func(event.TypedCreateEvent[*corev1.Secret]) bool { return false }})
		if err := c.apikeys.Watch(src); err != nil {
			c.Forget(namespace)
			return fmt.Errorf("watching the Secrets of namespace %q: %w", namespace, err)
		}
	}
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	// Reading a Secret starts its informer; the sync is waited for here,
	// so that reads after Ensure come from the cache.
	if _, err := nsCache.GetInformer(syncCtx, &corev1.Secret{}); err != nil {
		return fmt.Errorf("starting the Secret cache of namespace %q: %w", namespace, err)
	}
	if !nsCache.WaitForCacheSync(syncCtx) {
		return fmt.Errorf("the Secret cache of namespace %q did not sync", namespace)
	}
	c.mu.Lock()
	nc.synced = true
	c.mu.Unlock()
	return nil
}

// Forget stops the cache of namespace (being deleted).
func (c *SecretCaches) Forget(namespace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nc := c.running[namespace]; nc != nil {
		nc.cancel()
		delete(c.running, namespace)
	}
}

// Get reads a key Secret: from its namespace's cache once synced, else from
// the API server. A Secret without the hub's label is not in a cache: it
// is reported not found, as the manager-wide cache did.
func (c *SecretCaches) Get(ctx context.Context, key client.ObjectKey, secret *corev1.Secret) error {
	c.mu.Lock()
	nc := c.running[key.Namespace]
	c.mu.Unlock()
	if nc != nil && nc.synced {
		return nc.cache.Get(ctx, key, secret)
	}
	if err := c.apiReader.Get(ctx, key, secret); err != nil {
		return err
	}
	if _, ok := secret.Labels[hubv1.APIKeyLabel]; !ok {
		*secret = corev1.Secret{}
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	return nil
}
