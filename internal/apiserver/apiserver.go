// Package apiserver is the `apiserver` role: the management API
// (management.hub.minimax.io), an aggregated API server built on
// k8s.io/apiserver. kube-apiserver's aggregator routes the group to it, so
// kubectl, RBAC, audit and OpenAPI work as for any Kubernetes API.
//
// It is stateless: it has no etcd of its own. It reads the hub's objects
// from an informer cache, asks the usage server (the `server` role) for
// usage, and writes only the hub's custom resources, so the operator stays
// the source of truth. People are authenticated and authorized by
// delegation to kube-apiserver (the front-proxy headers of the aggregator,
// TokenReview, SubjectAccessReview).
package apiserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizerunion "k8s.io/apiserver/pkg/authorization/union"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	registryrest "k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	hubopenapi "github.com/minimax/platform-hub/internal/apiserver/openapi"
	"github.com/minimax/platform-hub/internal/keycheck"
	"github.com/minimax/platform-hub/internal/openaiadmin"
	"github.com/minimax/platform-hub/internal/scheme"
)

// Options configure the management API server.
type Options struct {
	// ListenAddr is host:port to serve HTTPS on.
	ListenAddr string
	// CertFile and KeyFile are the serving certificate, which must name
	// the Service the APIService points at (<service>.<namespace>.svc).
	CertFile, KeyFile string
	// Kubeconfig reaches kube-apiserver, for the delegated authentication
	// and authorization and the hub's objects; empty means in-cluster.
	Kubeconfig string
	// Usage reaches the usage server.
	Usage *UsageClient
	// Now tells the time (the current billing cycle); nil means time.Now.
	Now func() time.Time
	// TrustForwardedFor takes the address of a caller with a hub key (for
	// the organization's IP allowlist) from the last X-Forwarded-For
	// entry: set it only behind one proxy, which appends the address it
	// saw (perclient.Address).
	TrustForwardedFor bool
	// IssueWait bounds how long a key request or rotation request waits
	// for the controller to record the key; 0 means 20 seconds.
	IssueWait time.Duration
}

// Server is a configured management API server.
type Server struct {
	generic *genericapiserver.GenericAPIServer
	cache   cache.Cache
}

// New configures the server; Run serves it.
func New(opts Options) (*Server, error) {
	hubScheme, codecs := newScheme()
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	cfg, err := genericConfig(opts, hubScheme, codecs)
	if err != nil {
		return nil, err
	}
	kube, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	hub, err := newHubClients(kube)
	if err != nil {
		return nil, err
	}
	// Hub keys first: a hub key never reaches a TokenReview. Then the
	// front-proxy headers of the aggregator, client certificates and
	// TokenReview. Keys of a scope other than Admin are refused before
	// RBAC is asked; what RBAC refuses is refused naming the role needed.
	cfg.Authentication.Authenticator = union.NewFailOnError(&hubKeyAuthenticator{cache: hub.cache, now: now,
		trustForwardedFor: opts.TrustForwardedFor},
		cfg.Authentication.Authenticator)
	delegated := cfg.Authorization.Authorizer
	if cfg.Authorization.Authorizer, err = authorizerunion.New(
		authorizerunion.NamedAuthorizer{AuthorizerName: "hub-key-scope", Authorizer: authorizer.AuthorizerFunc(authorizeKeyScope)},
		authorizerunion.NamedAuthorizer{AuthorizerName: "openai-admin", Authorizer: authorizer.AuthorizerFunc(authorizeOpenAIPaths)},
		authorizerunion.NamedAuthorizer{AuthorizerName: "delegated", Authorizer: delegated},
		authorizerunion.NamedAuthorizer{AuthorizerName: "hub-roles", Authorizer: authorizer.AuthorizerFunc(explainRefusal)}); err != nil {
		return nil, err
	}

	// The OpenAI-compatible surface answers refusals of the filters in
	// OpenAI's error body.
	cfg.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return openaiadmin.Errors(genericapiserver.DefaultBuildHandlerChain(h, c))
	}
	generic, err := cfg.Complete().New("hub-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	issueWait := opts.IssueWait
	if issueWait == 0 {
		issueWait = 20 * time.Second
	}
	issuer := keyIssuer{cache: hub.cache, secrets: hub.client, wait: issueWait,
		actAs: &actAs{config: kube, scheme: scheme.New(), mapper: hub.mapper}}
	group := genericapiserver.NewDefaultAPIGroupInfo(mgmtv1alpha1.GroupName, hubScheme, runtime.NewParameterCodec(hubScheme), codecs)
	group.NegotiatedSerializer = withCSV{codecs}
	group.VersionedResourcesStorageMap[mgmtv1alpha1.SchemeGroupVersion.Version] = map[string]registryrest.Storage{
		"usagereports":     &usageReports{usage: opts.Usage, cache: hub.cache},
		"projectusages":    &projectUsages{usage: opts.Usage, cache: hub.cache, now: now},
		"usagerecords":     &usageRecords{usage: opts.Usage, cache: hub.cache, now: now},
		"keyrequests":      &keyRequests{issuer},
		"rotationrequests": &rotationRequests{issuer},
		"members":          &members{actAs: issuer.actAs},
		"auditevents":      &auditEvents{usage: opts.Usage},
		"alerts":           &alerts{usage: opts.Usage},
	}
	if err := generic.InstallAPIGroup(&group); err != nil {
		return nil, fmt.Errorf("installing %s: %w", mgmtv1alpha1.GroupName, err)
	}
	generic.Handler.NonGoRestfulMux.HandlePrefix(openaiadmin.Prefix, &openaiadmin.Handler{Usage: openAIUsage{opts.Usage},
		ActAs: issuer.actAs.client, Authorizer: delegated, Now: now})
	return &Server{generic: generic, cache: hub.cache}, nil
}

// genericConfig is the configuration of k8s.io/apiserver: serving,
// delegated authentication and authorization, and OpenAPI.
func genericConfig(opts Options, hubScheme *runtime.Scheme, codecs serializer.CodecFactory) (*genericapiserver.RecommendedConfig, error) {
	host, portText, err := net.SplitHostPort(opts.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("--listen-address %q: %w", opts.ListenAddr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("--listen-address %q: the port must be a number", opts.ListenAddr)
	}
	secure := genericoptions.NewSecureServingOptions().WithLoopback()
	secure.BindPort = port
	if host != "" {
		secure.BindAddress = net.ParseIP(host)
	}
	secure.ServerCert.CertKey = genericoptions.CertKey{CertFile: opts.CertFile, KeyFile: opts.KeyFile}
	authn := genericoptions.NewDelegatingAuthenticationOptions()
	authn.RemoteKubeConfigFile = opts.Kubeconfig
	authz := genericoptions.NewDelegatingAuthorizationOptions()
	authz.RemoteKubeConfigFile = opts.Kubeconfig

	cfg := genericapiserver.NewRecommendedConfig(codecs)
	cfg.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()
	namer := openapi.NewDefinitionNamer(hubScheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(hubopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title, cfg.OpenAPIConfig.Info.Version = "Platform Hub management API", "v1alpha1"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(hubopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title, cfg.OpenAPIV3Config.Info.Version = "Platform Hub management API", "v1alpha1"
	if err := secure.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return nil, fmt.Errorf("serving: %w", err)
	}
	if err := authn.ApplyTo(&cfg.Authentication, cfg.SecureServing, cfg.OpenAPIConfig); err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	if err := authz.ApplyTo(&cfg.Authorization); err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	// No API priority and fairness of its own: kube-apiserver's applies
	// before the aggregator proxies.
	cfg.FlowControl = nil
	return cfg, nil
}

// hubClients reach the hub's objects: a cache (with the key digest and
// member email indexes) for reads, a client for the few reads past it
// (key Secrets), sharing one REST mapper and connection pool.
type hubClients struct {
	cache  cache.Cache
	client client.Client
	mapper meta.RESTMapper
}

func newHubClients(kube *rest.Config) (*hubClients, error) {
	httpClient, err := rest.HTTPClientFor(kube)
	if err != nil {
		return nil, fmt.Errorf("reaching kube-apiserver: %w", err)
	}
	h := &hubClients{}
	if h.mapper, err = apiutil.NewDynamicRESTMapper(kube, httpClient); err != nil {
		return nil, fmt.Errorf("reaching kube-apiserver: %w", err)
	}
	if h.cache, err = cache.New(kube, cache.Options{Scheme: scheme.New(), HTTPClient: httpClient, Mapper: h.mapper}); err != nil {
		return nil, fmt.Errorf("the cache of the hub's objects: %w", err)
	}
	if err := keycheck.IndexDigests(context.Background(), h.cache); err != nil {
		return nil, err
	}
	if err := indexMemberEmails(context.Background(), h.cache); err != nil {
		return nil, err
	}
	if h.client, err = client.New(kube, client.Options{Scheme: scheme.New(), HTTPClient: httpClient, Mapper: h.mapper}); err != nil {
		return nil, err
	}
	return h, nil
}

// Run serves until ctx ends. The cache of the hub's objects fills first,
// so that no answer is made from an empty cache.
func (s *Server) Run(ctx context.Context) error {
	// The informers the answers read, created before the cache starts.
	for _, obj := range []client.Object{&hubv1.Organization{}, &hubv1.Project{}, &hubv1.APIKey{}, &hubv1.Member{}} {
		if _, err := s.cache.GetInformer(ctx, obj); err != nil {
			return err
		}
	}
	go func() { _ = s.cache.Start(ctx) }()
	if !s.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("the cache of the hub's objects did not fill")
	}
	return s.generic.PrepareRun().RunWithContext(ctx)
}

// restConfig reaches kube-apiserver through kubeconfig, or in-cluster when
// it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// What the management API reads of the hub, from its cache. Delegated
// authentication and authorization, the front-proxy ConfigMap and the usage
// reports are granted in config/apiserver/rbac.yaml.
// +kubebuilder:rbac:groups=hub.minimax.io,resources=organizations;projects;apikeys;members,verbs=get;list;watch
// Key and rotation requests write APIKeys as the caller: impersonation of
// users, their groups and ServiceAccounts, and of the extras actAs forwards.
// Key Secrets are read only in project namespaces, through
// hub-apiserver-secret-reader, which the manager binds in each.
// +kubebuilder:rbac:groups="",resources=users;groups;serviceaccounts,verbs=impersonate
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=userextras/hub.minimax.io/via;userextras/hub.minimax.io/amr;userextras/hub.minimax.io/key-id;userextras/hub.minimax.io/key-scope,verbs=impersonate
