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
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// SecretCaches keeps the hub's key Secrets in one cache per project
// namespace, so that the manager needs Secret permissions in project
// namespaces only (granted there with each namespace) and never lists or
// watches Secrets across the cluster, which RBAC could not scope to the
// hub's Secrets. The Project controller starts a namespace's cache once the
// namespace is ready (Ensure, which it retries until the cache syncs) and
// stops it when the namespace goes (Forget); until its cache has synced, a
// namespace's Secrets are read from the API server.
//
// Each cache tells the APIKey controller, through one channel source added
// at setup, of the changes and deletions of the Secrets it owns (a deleted
// or edited Secret is issued again). Stopping a cache stops its handlers
// with it.
type SecretCaches struct {
	config    *rest.Config
	client    client.Client
	apiReader client.Reader
	// events goes to the APIKey controller's channel source.
	events chan event.TypedGenericEvent[*corev1.Secret]

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
		events: make(chan event.TypedGenericEvent[*corev1.Secret], 1024), started: make(chan struct{}),
		running: map[string]*namespaceCache{}}
}

// Source is what the APIKey controller watches: the changes and deletions
// of key Secrets in every namespace with a cache, mapped to their APIKey.
func (c *SecretCaches) Source() source.TypedSource[reconcile.Request] {
	return source.Channel(c.events, handler.TypedEnqueueRequestForOwner[*corev1.Secret](c.client.Scheme(),
		c.client.RESTMapper(), &hubv1.APIKey{}, handler.OnlyControllerOwner()))
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
// call it may start before it). A cache that does not sync is stopped, and
// the error returned, so that the caller's retry starts it again.
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

	if err := c.startCache(ctx, cacheCtx, nc); err != nil {
		c.forget(namespace, nc)
		return fmt.Errorf("starting the Secret cache of namespace %q: %w", namespace, err)
	}
	return nil
}

func (c *SecretCaches) startCache(ctx, cacheCtx context.Context, nc *namespaceCache) error {
	go func() { _ = nc.cache.Start(cacheCtx) }()
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	informer, err := nc.cache.GetInformer(syncCtx, &corev1.Secret{})
	if err != nil {
		return err
	}
	tell := func(obj any) {
		if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tombstone.Obj
		}
		if secret, ok := obj.(*corev1.Secret); ok {
			select {
			case c.events <- event.TypedGenericEvent[*corev1.Secret]{Object: secret}:
			case <-cacheCtx.Done():
			}
		}
	}
	// The controller creates the Secrets itself; their later changes and
	// deletion by others are what it must see.
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { tell(obj) },
		DeleteFunc: tell,
	}); err != nil {
		return err
	}
	if !nc.cache.WaitForCacheSync(syncCtx) {
		return fmt.Errorf("not synced within 30s (can the manager list Secrets there?)")
	}
	c.mu.Lock()
	nc.synced = true
	c.mu.Unlock()
	return nil
}

// Forget stops the cache of namespace (being deleted).
func (c *SecretCaches) Forget(namespace string) {
	c.mu.Lock()
	nc := c.running[namespace]
	c.mu.Unlock()
	if nc != nil {
		c.forget(namespace, nc)
	}
}

// forget stops nc, and removes it if it is still namespace's cache.
func (c *SecretCaches) forget(namespace string, nc *namespaceCache) {
	nc.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[namespace] == nc {
		delete(c.running, namespace)
	}
}

// Get reads a key Secret: from its namespace's cache once synced, else from
// the API server. A Secret without the hub's label is not in a cache: it
// is reported not found, as from the cache.
func (c *SecretCaches) Get(ctx context.Context, key client.ObjectKey, secret *corev1.Secret) error {
	c.mu.Lock()
	var synced cache.Cache
	if nc := c.running[key.Namespace]; nc != nil && nc.synced {
		synced = nc.cache
	}
	c.mu.Unlock()
	if synced != nil {
		return synced.Get(ctx, key, secret)
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
