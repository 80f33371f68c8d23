package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/serving"
)

// Options configure the gateway role.
type Options struct {
	// ListenAddr serves the OpenAI-compatible API.
	ListenAddr string
	// Upstream is the model API's base URL.
	Upstream string
	// UpstreamKeyFile holds the platform's own key for the upstream.
	UpstreamKeyFile string
	// RoutesFile holds the route table (YAML); empty means DefaultRoutes.
	RoutesFile string
	// ServerURL is the usage server's base URL (https://hub-server.hub-system.svc).
	ServerURL string
	// ServerCAFile verifies the usage server's certificate; empty uses the
	// system roots.
	ServerCAFile string
	// TokenFile is the ServiceAccount token the gateway shows the server.
	TokenFile string
	// Token, when set, is used instead of TokenFile (tests, `hub dev`).
	Token func() (string, error)
	// SpoolDir keeps usage events while the server is unreachable.
	SpoolDir string
	// MetricsAddr serves metrics; "0" disables them.
	MetricsAddr string
	// SecureMetrics serves metrics over HTTPS behind Kubernetes
	// authentication and authorization, as the other roles do (the
	// in-cluster default); off, plain HTTP (a laptop's loopback).
	SecureMetrics bool
	// ProbeAddr serves /healthz and /readyz; "0" disables them.
	ProbeAddr string
	// TrustForwardedFor takes client addresses from the last
	// X-Forwarded-For entry, which the one load balancer in front appends.
	TrustForwardedFor bool
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
	// FlushInterval bounds how long a usage event waits to be sent.
	FlushInterval time.Duration
	// MemoryEvents is how many usage events wait in memory before they go
	// to disk; zero means the shipper's default.
	MemoryEvents int
	// SpoolLimit bounds the spool in bytes; past it, calls are refused with
	// 503 until the usage server has taken the backlog. Keep it below the
	// spool volume's size (room for calls under way). Zero means no bound.
	SpoolLimit int64
	// HubNamespace holds the organization's SpendingCaps; default
	// hub-system.
	HubNamespace string
}

// NewManager builds the gateway role: a cache of APIKeys (indexed by
// digest), Projects and the Organization, the proxy, and the usage shipper.
// Every replica serves; none needs to be elected.
func NewManager(ctx context.Context, cfg *rest.Config, opts Options) (ctrl.Manager, *Shipper, error) {
	upstream, upstreamKey, err := upstreamOf(opts)
	if err != nil {
		return nil, nil, err
	}
	routes, err := loadRoutes(opts.RoutesFile)
	if err != nil {
		return nil, nil, err
	}
	serverClient, err := serverclient.HTTPClient(opts.ServerCAFile)
	if err != nil {
		return nil, nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	token := opts.Token
	if token == nil {
		token = serverclient.FileToken(opts.TokenFile)
	}

	shutdownTimeout := serveDrain + shipperFlush + 5*time.Second
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 metrics.ServerOptions(opts.MetricsAddr, opts.SecureMetrics),
		HealthProbeBindAddress:  opts.ProbeAddr,
		GracefulShutdownTimeout: &shutdownTimeout,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := IndexDigests(ctx, mgr.GetCache()); err != nil {
		return nil, nil, err
	}
	budgets, err := newBudgets(ctx, mgr, opts.HubNamespace)
	if err != nil {
		return nil, nil, err
	}
	shipper := NewShipper(ShipperOptions{
		URL: strings.TrimSuffix(opts.ServerURL, "/") + "/v1/usage/events", Client: serverClient, Token: token,
		SpoolDir: opts.SpoolDir, FlushInterval: opts.FlushInterval, MemoryEvents: opts.MemoryEvents, MaxSpoolBytes: opts.SpoolLimit,
		Log: ctrl.Log.WithName("usage-shipper"), Acks: budgets,
	})
	shipper.RegisterMetrics(ctrlmetrics.Registry)
	g := &Gateway{
		Cache: mgr.GetCache(), Upstream: upstream, UpstreamKey: upstreamKey, Recorder: shipper,
		Clock: opts.Clock, Metrics: NewMetrics(ctrlmetrics.Registry), TrustForwardedFor: opts.TrustForwardedFor,
		Budgets: budgets, Routes: routes, Owners: NewOwners(opts.ServerURL, serverClient, token),
	}
	g.Init()
	// The shipper outlives the API: calls that finish while it drains are
	// recorded, then shipped or spooled.
	served := make(chan struct{})
	if err := mgr.Add(runnable(func(ctx context.Context) error { return shipAfter(ctx, served, shipper) })); err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(runnable(func(ctx context.Context) error {
		defer close(served)
		return serve(ctx, opts.ListenAddr, g)
	})); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, nil, err
	}
	return mgr, shipper, nil
}

// upstreamOf reads the upstream's URL and the platform's key for it.
func upstreamOf(opts Options) (*url.URL, string, error) {
	upstream, err := url.Parse(opts.Upstream)
	if err != nil || upstream.Scheme == "" || upstream.Host == "" {
		return nil, "", fmt.Errorf("--upstream must be an absolute URL such as https://api.minimax.io, not %q", opts.Upstream)
	}
	if opts.UpstreamKeyFile == "" {
		return upstream, "", nil
	}
	raw, err := os.ReadFile(opts.UpstreamKeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("reading the upstream key: %w", err)
	}
	return upstream, strings.TrimSpace(string(raw)), nil
}

// loadRoutes is the route table of a file, or the default one.
func loadRoutes(file string) (*RouteTable, error) {
	if file != "" {
		return LoadRoutes(file)
	}
	return NewRouteTable(DefaultRoutes())
}

// newBudgets enforces Hard caps from the gateway's own metering, keeping
// the Hard caps from their informer, which starts with the others.
func newBudgets(ctx context.Context, mgr ctrl.Manager, hubNamespace string) (*Budgets, error) {
	if hubNamespace == "" {
		hubNamespace = hubv1.DefaultHubNamespace
	}
	// Members, to tell whose keys a group cap stops.
	if _, err := mgr.GetCache().GetInformer(ctx, &hubv1.Member{}); err != nil {
		return nil, err
	}
	b := &Budgets{HubNamespace: hubNamespace}
	return b, b.Watch(ctx, mgr.GetCache())
}

// ServerRules are what the gateway's ServiceAccount must be allowed on the
// usage server, which checks them with SubjectAccessReviews: post usage
// events, and record and read who owns upstream objects.
// config/server/rbac.yaml grants the same in a cluster.
func ServerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usageevents"}, Verbs: []string{"create"}},
		{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"upstreamobjects"}, Verbs: []string{"create", "get"}},
	}
}

// How long shutting down may take: calls in flight get serveDrain to finish,
// then the shipper shipperFlush to hand what is left to the server or the
// disk. The gateway's terminationGracePeriodSeconds (45) covers both.
const (
	serveDrain   = 30 * time.Second
	shipperFlush = 5 * time.Second
)

// shipAfter runs the shipper until ctx ends and then until served closes
// (the API has drained), or serveDrain has passed.
func shipAfter(ctx context.Context, served <-chan struct{}, s *Shipper) error {
	shipCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		<-ctx.Done()
		select {
		case <-served:
		case <-time.After(serveDrain + time.Second):
		}
		cancel()
	}()
	return s.Run(shipCtx)
}

// runnable runs on every replica, not only an elected one.
type runnable func(context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (r runnable) NeedLeaderElection() bool        { return false }

func serve(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := serving.NewServer(h, serving.Gateway)
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(l) }()
	ctrl.Log.WithName("gateway").Info("Serving the API", "address", l.Addr().String())
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	// Streams in flight get time to finish, and their usage to be recorded.
	shutdown, cancel := context.WithTimeout(context.Background(), serveDrain)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
